//! ordermeta-dydx (work in progress).
