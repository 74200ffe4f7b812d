//! The table provider behind each `raw.<platform>_<kind>_delivered` table: the served files of
//! one source kind, read with DataFusion's Parquet scan.
//!
//! DataFusion's `ListingTable` derives partition values from directory names, but
//! de-duplication also needs *which delivery* a row came from, and rejected files must be left
//! out one by one. So this provider lists its files itself (the catalog validated them) and
//! gives each file three partition values: `shop_id` and `dt` (from the path) and `_delivery`
//! (the delivery number). Filters on those columns prune whole files before any is opened.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;

use crate::discovery::SourceFile;

/// Partition columns every source table has, after the file columns.
pub const PARTITION_COLUMNS: [&str; 3] = ["shop_id", "dt", "_delivery"];

/// The served files of one source kind.
#[derive(Debug)]
pub struct SourceTable {
    table_schema: TableSchema,
    schema: SchemaRef,
    store_url: ObjectStoreUrl,
    files: Vec<SourceFile>,
}

impl SourceTable {
    /// A table over `files`, whose columns are `file_schema` plus [`PARTITION_COLUMNS`].
    pub fn new(file_schema: SchemaRef, store_url: ObjectStoreUrl, files: Vec<SourceFile>) -> Self {
        let partition_fields = vec![
            Arc::new(Field::new("shop_id", DataType::Utf8, true)),
            Arc::new(Field::new("dt", DataType::Date32, true)),
            Arc::new(Field::new("_delivery", DataType::Int64, false)),
        ];
        let table_schema = TableSchema::builder(file_schema)
            .with_table_partition_cols(partition_fields)
            .build();
        let schema = Arc::clone(table_schema.table_schema());
        SourceTable {
            table_schema,
            schema,
            store_url,
            files,
        }
    }

    /// Keeps the files whose partition values can satisfy `filters` (those that only
    /// reference partition columns; others are left to the scan and the plan above it).
    fn prune(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<&SourceFile>> {
        let applicable: Vec<Expr> = filters
            .iter()
            .filter(|f| is_partition_filter(f))
            .cloned()
            .collect();
        let Some(predicate) = conjunction(applicable) else {
            return Ok(self.files.iter().collect());
        };
        let partition_schema = Arc::new(Schema::new(
            self.table_schema
                .table_partition_cols()
                .iter()
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                self.files
                    .iter()
                    .map(|f| f.shop_id.as_deref())
                    .collect::<StringArray>(),
            ),
            Arc::new(self.files.iter().map(|f| f.dt).collect::<Date32Array>()),
            Arc::new(
                self.files
                    .iter()
                    .map(|f| Some(f.delivery))
                    .collect::<Int64Array>(),
            ),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&partition_schema), columns)?;
        let df_schema = DFSchema::try_from(partition_schema)?;
        let physical = state.create_physical_expr(predicate, &df_schema)?;
        let result = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
        let Some(keep) = result.as_any().downcast_ref::<BooleanArray>() else {
            return Ok(self.files.iter().collect());
        };
        Ok(self
            .files
            .iter()
            .enumerate()
            .filter(|(i, _)| keep.is_null(*i) || keep.value(*i))
            .map(|(_, f)| f)
            .collect())
    }
}

fn is_partition_filter(expr: &Expr) -> bool {
    let columns = expr.column_refs();
    !columns.is_empty()
        && columns
            .iter()
            .all(|c| PARTITION_COLUMNS.contains(&c.name.as_str()))
        && !expr.is_volatile()
}

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Pruning is by file, so rows still have to be filtered above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.prune(state, filters)?;
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // Spread files over the target partitions, largest first, so the groups are even.
        let target = state.config().target_partitions().max(1);
        let mut by_size = files;
        by_size.sort_by(|a, b| {
            b.meta
                .size
                .cmp(&a.meta.size)
                .then(a.delivery.cmp(&b.delivery))
        });
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..target.min(by_size.len()))
            .map(|_| (0, Vec::new()))
            .collect();
        for file in by_size {
            let Some(group) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) else {
                break;
            };
            group.0 += file.meta.size;
            group.1.push(
                PartitionedFile::new_from_meta(file.meta.clone()).with_partition_values(vec![
                    ScalarValue::Utf8(file.shop_id.clone()),
                    ScalarValue::Date32(file.dt),
                    ScalarValue::Int64(Some(file.delivery)),
                ]),
            );
        }
        let parquet_options = state.config_options().execution.parquet.clone();
        let source = ParquetSource::new(self.table_schema.clone()).with_table_parquet_options(
            datafusion::config::TableParquetOptions {
                global: parquet_options,
                ..Default::default()
            },
        );
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(
                groups
                    .into_iter()
                    .map(|(_, files)| FileGroup::new(files))
                    .collect(),
            )
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
