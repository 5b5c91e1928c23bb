//! postgres bench (work in progress).
fn main() {}
