//! controller (work in progress)
