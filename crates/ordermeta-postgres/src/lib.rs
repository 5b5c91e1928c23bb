//! ordermeta-postgres (work in progress).
