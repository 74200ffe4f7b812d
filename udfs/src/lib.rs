//! # amoeba-udfs
//!
//! Amoeba's domain functions for DataFusion — KPIs (ROI, ROAS, margins, turnover …), exact
//! allocation and costing — as pure Arrow kernels with no I/O. The library is built out in its
//! own issue; the crate exists so that the dependency direction of the workspace
//! (`engine` → `udfs`, `udfs` → DataFusion only) is fixed from the start.
