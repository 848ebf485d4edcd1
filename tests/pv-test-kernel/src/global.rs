//! A cell for the few globals of this single-vcpu kernel (no interrupts are ever delivered:
//! event upcalls stay masked), so there is never concurrent access.

use core::cell::UnsafeCell;

#[derive(Debug)]
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: the kernel runs on one vcpu with event delivery masked; a trap handler that uses a
// global never returns to the interrupted code (it shuts the domain down).
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// # Safety
    /// No other reference obtained from this global may be alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's promise (see the Sync impl).
        unsafe { &mut *self.0.get() }
    }
}
