//! ordermeta-sqlite (work in progress).
