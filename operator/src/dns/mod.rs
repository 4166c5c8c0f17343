//! dns (work in progress)
