//! `pvbuild serve`'s packets: whatever a client of the socket sends as a request (only the
//! server's own user can connect, but a request's bytes are still input). A packet that
//! decodes re-encodes to the same bytes, its words render as one line for the server's log,
//! and a reply that decodes is the one status byte encoded again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pvbuild::serve::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(args) = wire::decode_request(data) {
        assert!(!args.is_empty() && args.len() <= wire::MAX_ARGS);
        let again = wire::encode_request(&args).expect("decoded words re-encode");
        assert_eq!(again.as_slice(), data);
        let line = wire::shown(&args);
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    if let Ok(code) = wire::decode_reply(data) {
        assert_eq!(&wire::encode_reply(code)[..], data);
    }
});
