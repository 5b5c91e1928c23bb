//! ordermeta-dydx-sim (work in progress).
