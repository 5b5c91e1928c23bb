//! ordermeta-redis (work in progress).
