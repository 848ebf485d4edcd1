//! `CHECK <name> PASS|FAIL <detail>` lines and the final verdict.

use core::fmt;

use crate::println;

#[derive(Debug, Default)]
pub struct Report {
    pub total: u32,
    pub failed: u32,
}

impl Report {
    pub fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) -> bool {
        self.total += 1;
        if !ok {
            self.failed += 1;
        }
        println!(
            "CHECK {} {} {}",
            name,
            if ok { "PASS" } else { "FAIL" },
            detail
        );
        ok
    }

    /// A check that cannot run because what it needs failed or was not asked for; it is not
    /// counted (the failure that prevented it is).
    pub fn skip(&mut self, name: &str, detail: fmt::Arguments<'_>) {
        println!("CHECK {} SKIP {}", name, detail);
    }

    pub fn passed(&self) -> bool {
        self.failed == 0 && self.total > 0
    }

    pub fn print_verdict(&self) {
        if self.passed() {
            println!("VERDICT PASS");
        } else {
            println!("VERDICT FAIL {}/{}", self.failed, self.total);
        }
    }
}
