use std::os::unix::process::CommandExt;
use std::process::Command;

use super::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pvbuild-journal-unit.{}.{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A sweep host with no domains: what a record without a domain needs.
struct NoXen;

impl DomainUndo for NoXen {
    fn handle_of(&self, _: u16) -> Result<Option<[u8; 16]>, String> {
        Ok(None)
    }
    fn unnamed_with_handle(&self, _: &[u8; 16]) -> Result<Vec<u16>, String> {
        Ok(Vec::new())
    }
    fn destroy(&self, domid: u16, _: Option<&Uuid>) -> Result<(), String> {
        Err(format!("no domain {domid} expected"))
    }
    fn remove_vm(&self, _: &Uuid) -> Result<(), String> {
        Ok(())
    }
}

fn read_record(path: &Path) -> Record {
    Record::parse(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_record_holds_each_acquisition_in_order() {
    let d = dir("order");
    let j = Journal::begin_in(&d, "web 1").unwrap();
    let uuid = Uuid::from_bytes([7; 16]);
    note(&Entry::Uuid(uuid)).unwrap();
    note(&Entry::Domain(12)).unwrap();
    let kept = d.join("pvbuild-kept");
    let gone = d.join("pvbuild-gone");
    note(&Entry::Dir(kept.clone())).unwrap();
    note(&Entry::Dir(gone.clone())).unwrap();
    note(&Entry::DirGone(gone)).unwrap();
    // A child records itself, with its start time as /proc shows it.
    let mut cmd = Command::new("true");
    cmd.process_group(0);
    record_child(&mut cmd, "hotplug");
    let mut child = cmd.spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let start = start_time(pid);
    child.wait().unwrap();
    let r = read_record(j.path());
    assert_eq!(r.owner, Some(i32::try_from(std::process::id()).unwrap()));
    assert_eq!(r.name.as_deref(), Some("web 1"));
    assert_eq!(r.uuid, Some(uuid));
    assert_eq!(r.domid, Some(12));
    assert_eq!(r.dirs, vec![kept]);
    assert_eq!(r.procs.len(), 1, "{r:?}");
    let p = r.procs.first().unwrap();
    assert_eq!((p.role.as_str(), p.pid), ("hotplug", pid));
    if let Some(s) = start {
        assert_eq!(p.start, s);
    }
    assert!(!r.done);
    // Ended: gone from the directory, and nothing is recorded any more.
    let path = j.path().to_owned();
    j.end().unwrap();
    assert!(!path.exists());
    note(&Entry::Domain(13)).unwrap();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_line_cut_by_the_kill_and_unknown_lines_are_skipped() {
    let r = Record::parse(b"pvbuild-journal 1\nowner 5\nfuture thing\ndomain 3\ndomain 4").unwrap();
    assert_eq!(r.domid, Some(3));
    assert_eq!(r.owner, Some(5));
    assert!(Record::parse(b"pvbuild-journal 1").is_none());
    assert!(Record::parse(b"something else\ndomain 3\n").is_none());
    // pid 1 and nonsense are never taken as a process to stop.
    let r = Record::parse(b"pvbuild-journal 1\nproc x 1 5\nproc x -3 5\nproc x y 5\n").unwrap();
    assert!(r.procs.is_empty());
}

#[test]
fn the_stat_start_time_is_read_past_a_name_with_spaces_and_parens() {
    let stat = b"42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
    assert_eq!(stat_field(stat, 22), Some(98765));
    assert_eq!(stat_field(stat, 5), Some(42));
    assert_eq!(stat_field(b"no paren", 22), None);
}

#[test]
fn a_running_create_is_left_alone_and_a_killed_one_is_undone() {
    let d = dir("killed");
    let j = Journal::begin_in(&d, "g").unwrap();
    // A private directory and a child that would outlive its creator (its own group, as
    // every child pvbuild starts), both recorded.
    let priv_dir = d.join("pvbuild-bootloader.1.0");
    note(&Entry::Dir(priv_dir.clone())).unwrap();
    std::fs::create_dir_all(priv_dir.join("files")).unwrap();
    std::fs::write(priv_dir.join("files/kernel"), b"k").unwrap();
    let mut cmd = Command::new("sleep");
    cmd.arg("1000").process_group(0);
    record_child(&mut cmd, "device-model");
    let mut child = cmd.spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    // While its creator holds the lock, no sweep touches it.
    assert!(sweep_in(&d, Filter::All, &NoXen).is_empty());
    assert!(group_alive(pid) && priv_dir.exists());
    // "Killed": the lock goes, the record stays.
    let path = j.path().to_owned();
    drop(j);
    assert!(path.exists());
    // A sweep for another name leaves it.
    assert!(sweep_in(&d, Filter::Name("h"), &NoXen).is_empty());
    let swept = sweep_in(&d, Filter::Name("g"), &NoXen);
    assert_eq!(swept.len(), 1, "{swept:?}");
    let s = swept.first().unwrap();
    assert!(s.errors.is_empty(), "{s}");
    assert_eq!(s.stopped, vec![("device-model".to_owned(), pid)]);
    assert_eq!(s.dirs, vec![priv_dir.clone()]);
    // Stopped (a zombie until this test, its parent, reaps it) and removed.
    assert!(!group_alive(pid));
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!priv_dir.exists());
    assert!(!path.exists());
    assert!(sweep_in(&d, Filter::All, &NoXen).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_pid_given_to_another_process_is_not_signalled() {
    // This test's own pid, recorded with another start time: the kernel gave the pid to
    // someone else since. Nothing is sent (the test would die of it).
    let me = i32::try_from(std::process::id()).unwrap();
    let start = start_time(me).unwrap();
    let p = Proc {
        role: "device-model".into(),
        pid: me,
        start: start + 1,
    };
    assert_eq!(stop_recorded(&p), Ok(false));
    // A pid nobody has, and no group of that number: nothing to stop.
    let p = Proc {
        role: "hotplug".into(),
        pid: i32::MAX - 7,
        start: 1,
    };
    assert_eq!(stop_recorded(&p), Ok(false));
}

#[test]
fn a_group_whose_leader_is_gone_is_still_stopped() {
    // A hotplug script that started a child and exited (leader gone, group left): the
    // group's number cannot have been handed out again while the child lives.
    let d = dir("group");
    let j = Journal::begin_in(&d, "g").unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 1000 >/dev/null 2>&1 & echo $!"])
        .process_group(0)
        .stdout(std::process::Stdio::piped());
    record_child(&mut cmd, "hotplug");
    let out = cmd.output().unwrap();
    let grandchild: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let r = read_record(j.path());
    let leader = r.procs.first().unwrap().pid;
    assert!(start_time(leader).is_none(), "the leader was reaped");
    assert!(group_alive(leader));
    drop(j);
    let swept = sweep_in(&d, Filter::All, &NoXen);
    assert_eq!(swept.first().map(|s| s.stopped.len()), Some(1), "{swept:?}");
    let t = Instant::now();
    // The grandchild's parent (sh) is gone: init reaps it; wait for that.
    while start_time(grandchild)
        .is_some_and(|_| state_and_group(grandchild).is_some_and(|(s, _)| s != b'Z'))
    {
        assert!(t.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_child_that_cannot_be_recorded_does_not_run() {
    let d = dir("unrecordable");
    let j = Journal::begin_in(&d, "g").unwrap();
    // The record's descriptor, closed under it: the child's write fails, and it never execs.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exit 0"]);
    let fd = j.active.file.as_raw_fd();
    // SAFETY: the closure runs in the child and only closes a descriptor (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            nix::libc::close(fd);
            Ok(())
        });
    }
    record_child(&mut cmd, "hotplug");
    assert!(cmd.spawn().is_err());
    drop(j);
    let _ = std::fs::remove_dir_all(&d);
}

/// A sweep host whose domains are `live` (id, handle); records what it destroyed.
struct Live {
    live: Vec<(u16, [u8; 16])>,
    destroyed: std::cell::RefCell<Vec<u16>>,
}

impl DomainUndo for Live {
    fn handle_of(&self, domid: u16) -> Result<Option<[u8; 16]>, String> {
        Ok(self.live.iter().find(|(d, _)| *d == domid).map(|(_, h)| *h))
    }
    fn unnamed_with_handle(&self, handle: &[u8; 16]) -> Result<Vec<u16>, String> {
        Ok(self
            .live
            .iter()
            .filter(|(_, h)| h == handle)
            .map(|(d, _)| *d)
            .collect())
    }
    fn destroy(&self, domid: u16, _: Option<&Uuid>) -> Result<(), String> {
        self.destroyed.borrow_mut().push(domid);
        Ok(())
    }
    fn remove_vm(&self, _: &Uuid) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_stub_domain_made_by_the_create_is_undone_after_its_guest() {
    // An HVM guest (uuid 1, domain 5) and its stub (uuid 2, domain 6), as a create with a
    // stub domain records them; killed after both existed.
    let text = format!(
        "pvbuild-journal 1\nowner 1\nuuid {}\ndomain 5\nuuid {}\ndomain 6\n",
        Uuid::from_bytes([1; 16]).hyphenated(),
        Uuid::from_bytes([2; 16]).hyphenated()
    );
    let r = Record::parse(text.as_bytes()).unwrap();
    assert_eq!(
        (r.uuid, r.domid),
        (Some(Uuid::from_bytes([1; 16])), Some(5))
    );
    assert_eq!(r.helpers, vec![(Uuid::from_bytes([2; 16]), Some(6))]);
    let host = Live {
        live: vec![(5, [1; 16]), (6, [2; 16])],
        destroyed: Default::default(),
    };
    let mut out = Swept::default();
    undo(&r, &host, &mut out);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(*host.destroyed.borrow(), vec![5, 6]);
    assert_eq!(out.domain, Some(5));
    // Killed while Xen made the stub: found by its handle. A stub id reused by another
    // domain since is not touched.
    let text = format!(
        "pvbuild-journal 1\nuuid {}\ndomain 5\nuuid {}\n",
        Uuid::from_bytes([1; 16]).hyphenated(),
        Uuid::from_bytes([2; 16]).hyphenated()
    );
    let r = Record::parse(text.as_bytes()).unwrap();
    let host = Live {
        live: vec![(5, [1; 16]), (9, [2; 16])],
        destroyed: Default::default(),
    };
    let mut out = Swept::default();
    undo(&r, &host, &mut out);
    assert_eq!(*host.destroyed.borrow(), vec![5, 9]);
    let r = Record::parse(
        format!(
            "pvbuild-journal 1\nuuid {}\ndomain 5\nuuid {}\ndomain 6\n",
            Uuid::from_bytes([1; 16]).hyphenated(),
            Uuid::from_bytes([2; 16]).hyphenated()
        )
        .as_bytes(),
    )
    .unwrap();
    let host = Live {
        live: vec![(5, [1; 16]), (6, [3; 16])],
        destroyed: Default::default(),
    };
    let mut out = Swept::default();
    undo(&r, &host, &mut out);
    assert_eq!(*host.destroyed.borrow(), vec![5]);
}
