//! redis bench (work in progress).
fn main() {}
