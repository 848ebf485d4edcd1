//! The xenstore wire reply parser: whatever xenstored (or anything on its socket) sends.
//! The input is a byte stream of messages: each is parsed in turn, its payload goes through
//! every payload parser the connection uses, and a message that parses re-encodes to the
//! same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pvbuild::xenstore::wire;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok((msg, used)) = wire::parse_reply(rest) {
        assert!(used >= wire::HEADER_LEN && used <= rest.len());
        assert!(msg.payload.len() <= wire::PAYLOAD_MAX);
        let again = wire::encode_raw(msg.msg_type, msg.req_id, msg.tx_id, &msg.payload)
            .expect("a parsed payload is within PAYLOAD_MAX");
        assert_eq!(again.as_slice(), &rest[..used]);
        let _ = wire::parse_error(&msg.payload);
        let _ = wire::parse_string(&msg.payload);
        let _ = wire::parse_list(&msg.payload);
        let _ = wire::parse_ok(&msg.payload);
        let _ = wire::parse_watch_event(&msg.payload);
        rest = &rest[used..];
    }
});
