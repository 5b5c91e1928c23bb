//! sqlite bench (work in progress).
fn main() {}
