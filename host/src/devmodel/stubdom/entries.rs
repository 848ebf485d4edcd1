//! The xenstore entries that tie a stub domain to its guest, as `libxl__spawn_stub_dm` and
//! `spawn_stub_launch_dm` write them (oracle: xl's tree in
//! tests/xen/reference/xl-stubdom-xenstore.txt).

use crate::xenstore::{console_ops, dom_path, Access, Op, Perm};

use super::{StubRole, SERIAL_CONSOLE};

/// The domain that serves a stub's consoles (a QEMU in dom0).
const CONSOLE_BACKEND: u32 = 0;

/// Where libxl's stub writes the guest's device-model state for a save
/// (`libxl__device_model_savefile`): console 1's output.
pub fn save_file(guest_domid: u32) -> String {
    format!("/var/lib/xen/qemu-save.{guest_domid}")
}

/// The stub's consoles 1 and up (console 0 is written with the domain, its output the log):
/// 1 the save stream, 2 the restore stream (no output: nothing is restored), then one per
/// serial port of the guest, its output the guest's `serial` value.
pub fn console_entries(stub: u32, role: &StubRole) -> Vec<Op> {
    let save = save_file(role.guest_domid);
    let mut ops = console_ops(stub, CONSOLE_BACKEND, 1, Some(&save_output(&save)));
    ops.extend(console_ops(stub, CONSOLE_BACKEND, 2, None));
    for (i, out) in role.serials.iter().enumerate() {
        let devid = SERIAL_CONSOLE + u32::try_from(i).unwrap_or(u32::MAX - SERIAL_CONSOLE);
        ops.extend(console_ops(stub, CONSOLE_BACKEND, devid, Some(out)));
    }
    ops
}

fn save_output(path: &str) -> String {
    format!("file:{path}")
}

/// QEMU's arguments for the stub, one node each under the guest's
/// `<vm>/image/dm-argv/NNN` (from 001), the directory owned by dom0 and readable by the stub
/// (`libxl__write_stub_dmargs`).
pub fn argv_entries(guest_vm: &str, stub: u32, args: &[String]) -> Vec<Op> {
    let dir = format!("{guest_vm}/image/dm-argv");
    let mut ops = vec![Op::Mknod(
        dir.clone(),
        vec![Perm::new(0, Access::None), Perm::new(stub, Access::Read)],
    )];
    for (i, a) in args.iter().enumerate() {
        ops.push(Op::Write(format!("{dir}/{:03}", i + 1), a.clone()));
    }
    ops
}

/// The guest's `image/device-model-domid` and the stub's `target` (written before
/// `XEN_DOMCTL_set_target`, as libxl).
pub fn link_entries(guest: u32, stub: u32) -> Vec<Op> {
    vec![
        Op::Write(
            format!("{}/image/device-model-domid", dom_path(guest)),
            stub.to_string(),
        ),
        Op::Write(format!("{}/target", dom_path(stub)), guest.to_string()),
    ]
}

/// `/local/domain/<stub>/device-model/<guest>`: where the stub's QEMU writes its `state`
/// (and its QMP vchan), owned by the stub, readable by the guest; made once the stub has its
/// target.
pub fn device_model_dir(stub: u32, guest: u32) -> String {
    format!("{}/device-model/{guest}", dom_path(stub))
}

/// [`device_model_dir`], made with libxl's permissions.
pub fn device_model_dir_entries(stub: u32, guest: u32) -> Vec<Op> {
    vec![Op::MkdirPerms(
        device_model_dir(stub, guest),
        vec![
            Perm::new(stub, Access::None),
            Perm::new(guest, Access::Read),
        ],
    )]
}

/// The stub's QEMU's state node: `running` once it serves the guest.
pub fn state_path(stub: u32, guest: u32) -> String {
    format!("{}/state", device_model_dir(stub, guest))
}
