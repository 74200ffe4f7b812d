//! Amoeba's integration tests: one binary (each test binary links DataFusion), a module per
//! area. Warehouses are generated once per (scale, seed) under the target directory and
//! shared by the tests that read them; tests that break files work on copies.

mod catalog_truth;
mod clients;
mod cubes;
mod frontend;
mod incremental;
mod ledger;
mod rejections;
mod s3;
mod server;
mod sqllogic;
mod support;
mod worked_example;
