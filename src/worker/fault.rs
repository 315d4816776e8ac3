//! A test-only fault: `TASKWORKER_TEST_PANIC=<site>` makes the thread that
//! passes `<site>` panic there, once per process, so that tests can prove
//! what happens when each role dies. Only debug builds read the variable;
//! in a release build [`panic_if_asked`] is empty.
//!
//! Sites: `poller` (after it hands out a task), `reporter` (when it takes an
//! outcome), `supervisor` (on its first pass that finds a task running),
//! `heartbeat` (on its first pass that finds a leased task), `health`
//! (answering `/metrics`),
//! `processor-outside-handler` (a task received, its deadline not yet
//! computed) and `processor-after-handler` (the handler returned, its
//! outcome not yet handed over).

/// Panics if `TASKWORKER_TEST_PANIC` names `site` and no site has fired yet.
#[cfg(debug_assertions)]
pub(crate) fn panic_if_asked(site: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FIRED: AtomicBool = AtomicBool::new(false);
    let asked = std::env::var("TASKWORKER_TEST_PANIC").is_ok_and(|s| s == site);
    if asked && !FIRED.swap(true, Ordering::SeqCst) {
        panic!("test fault at {site} (TASKWORKER_TEST_PANIC)");
    }
}

/// Does nothing: release builds have no fault hook.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn panic_if_asked(_site: &str) {}
