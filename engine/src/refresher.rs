//! Keeping a served warehouse fresh: when exports land (or the model changes), rebuild the
//! ledger, refresh the cubes and swap the result into the serving session.
//!
//! ```text
//!  poll (every N s): list the warehouse's inputs ──(changed?)──► open_published (a new session:
//!                                                               catalog, ledger, cubes, checks)
//!        serving session ◄── swap: routes off · schemas cubes, raw, public · routes on ──┘
//! ```
//!
//! Everything is built beside the served state and swapped in only when it is whole, so a bad
//! export or a bad model never replaces the last good state: the error is logged and shown in
//! `amoeba_cubes.last_error`, and the old tables stay served. Each schema is swapped in one
//! step; routing is switched off during the swap, so no query is answered from a cube of
//! another ledger than the one it reads.

use std::sync::Arc;
use std::time::Duration;

use amoeba_catalog::{Model, Warehouse};
use datafusion::prelude::SessionContext;
use tokio::sync::Mutex;

use crate::cube::{self, CubeRoutes, CubeStatus, Outcome, RefreshOptions};
use crate::error::{EngineError, Result};
use crate::inputs::InputListing;
use crate::session::{CATALOG_NAME, Served, open_published};

/// The schemas a refresh replaces.
const SCHEMAS: [&str; 3] = [cube::CUBES_SCHEMA, "raw", "public"];

/// Refreshes a served warehouse in place.
pub struct Refresher {
    warehouse: Warehouse,
    ctx: Arc<SessionContext>,
    /// What is served; one refresh at a time.
    served: Mutex<ServedState>,
}

/// What the served state was built from, and the cubes' statuses.
struct ServedState {
    inputs: InputListing,
    model: Option<Model>,
    statuses: Vec<CubeStatus>,
}

impl Refresher {
    /// Opens `warehouse` (builds the ledger, refreshes the cubes) and returns the refresher of
    /// the served session, with what the first refresh did.
    pub async fn open(warehouse: Warehouse) -> Result<(Refresher, Served)> {
        let inputs = InputListing::of(&warehouse).await?;
        let served = open_published(warehouse.clone(), RefreshOptions::default()).await?;
        let refresher = Refresher {
            warehouse,
            ctx: Arc::new(served.ctx.clone()),
            served: Mutex::new(ServedState {
                inputs,
                model: served.catalog.model().cloned(),
                statuses: served.cubes.clone(),
            }),
        };
        Ok((refresher, served))
    }

    /// The served session.
    pub fn ctx(&self) -> Arc<SessionContext> {
        Arc::clone(&self.ctx)
    }

    /// Refreshes if the inputs changed since the served state was built (or always, with
    /// `force`); returns the cubes' statuses when it refreshed.
    pub async fn refresh_if_changed(&self, force: bool) -> Result<Option<Vec<CubeStatus>>> {
        let mut served = self.served.lock().await;
        let now = InputListing::of(&self.warehouse).await?;
        if !force && now == served.inputs {
            return Ok(None);
        }
        log::info!("inputs changed: refreshing the ledger and the cubes");
        let options = RefreshOptions {
            skip_scheduled: true,
            ..RefreshOptions::default()
        };
        match open_published(self.warehouse.clone(), options).await {
            Ok(fresh) => {
                self.swap(&fresh.ctx).await?;
                served.inputs = now;
                served.model = fresh.catalog.model().cloned();
                served.statuses = fresh.cubes.clone();
                Ok(Some(fresh.cubes))
            }
            Err(e) => {
                // The last good state stays served; say why it is not refreshed. (The inputs
                // are remembered: the same bad inputs are not retried at every poll.)
                log::error!("refresh failed, the previous state stays served: {e}");
                if let Some(model) = &served.model {
                    self.record_failure(model, &e).await?;
                }
                served.inputs = now;
                Err(e)
            }
        }
    }

    /// Replaces the served schemas with `fresh`'s.
    async fn swap(&self, fresh: &SessionContext) -> Result<()> {
        let (Some(from), Some(to)) = (fresh.catalog(CATALOG_NAME), self.ctx.catalog(CATALOG_NAME))
        else {
            return Err(EngineError::setup(format!("no catalog {CATALOG_NAME}")));
        };
        let served_routes = routes(&self.ctx);
        if let Some(r) = &served_routes {
            r.set(Vec::new());
        }
        for schema in SCHEMAS {
            if let Some(s) = from.schema(schema) {
                to.register_schema(schema, s)?;
            }
        }
        if let (Some(served), Some(new)) = (served_routes, routes(fresh)) {
            served.set(new.routes());
        }
        Ok(())
    }

    /// Marks every served cube of `model` as failed with `error` in `amoeba_cubes`.
    async fn record_failure(&self, model: &Model, error: &EngineError) -> Result<()> {
        let mut statuses = Vec::new();
        for def in &model.cubes {
            let failed = Outcome::Failed(error.to_string());
            statuses.push(CubeStatus::unrefreshed(&self.warehouse, def, failed).await?);
        }
        cube::register_status(&self.ctx, &statuses)
    }

    /// The model of the served state.
    pub async fn model(&self) -> Option<Model> {
        self.served.lock().await.model.clone()
    }

    /// Refreshes the cubes whose schedule has a due minute in `(after_ms, until_ms]`, from
    /// the published ledger, in the served session; returns their statuses.
    pub async fn refresh_scheduled(&self, after_ms: u64, until_ms: u64) -> Result<Vec<CubeStatus>> {
        let mut served = self.served.lock().await;
        let Some(model) = served.model.clone() else {
            return Ok(Vec::new());
        };
        let due: Vec<String> = model
            .cubes
            .iter()
            .filter(|c| {
                c.schedule
                    .as_ref()
                    .is_some_and(|s| s.due_between(after_ms, until_ms))
            })
            .map(|c| c.name.clone())
            .collect();
        for name in &due {
            log::info!("cube {name}: scheduled refresh");
        }
        self.refresh_named(&mut served, &model, &due, false).await
    }

    /// Refreshes the cube `name` (every cube with `None`) now, whatever its schedule — after
    /// picking up inputs that changed (`REFRESH CUBE`); `full` rebuilds every month. Returns
    /// the refreshed cubes' statuses.
    pub async fn refresh_cubes(&self, name: Option<&str>, full: bool) -> Result<Vec<CubeStatus>> {
        self.refresh_if_changed(false).await?;
        let mut served = self.served.lock().await;
        let Some(model) = served.model.clone() else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = match name {
            Some(n) => {
                if model.cube(n).is_none() {
                    return Err(EngineError::Cube {
                        cube: n.to_string(),
                        reason: "not declared in the model".to_string(),
                    });
                }
                vec![n.to_string()]
            }
            None => model.cubes.iter().map(|c| c.name.clone()).collect(),
        };
        self.refresh_named(&mut served, &model, &names, full).await
    }

    /// Refreshes `names` from the published ledger and serves the result.
    async fn refresh_named(
        &self,
        served: &mut ServedState,
        model: &Model,
        names: &[String],
        full: bool,
    ) -> Result<Vec<CubeStatus>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let Some(ledger) = crate::ledger::current_manifest(&self.warehouse).await? else {
            return Ok(Vec::new());
        };
        let mut done = Vec::new();
        for name in names {
            let options = RefreshOptions {
                only: Some(name.clone()),
                full,
                ..RefreshOptions::default()
            };
            done.extend(cube::refresh(&self.ctx, &self.warehouse, model, &ledger, &options).await?);
        }
        cube::register(&self.ctx, &self.warehouse, model, Some(&ledger)).await?;
        for status in &done {
            match served.statuses.iter_mut().find(|s| s.cube == status.cube) {
                Some(s) => *s = status.clone(),
                None => served.statuses.push(status.clone()),
            }
        }
        cube::register_status(&self.ctx, &served.statuses)?;
        Ok(done)
    }

    /// Polls the warehouse every `every`: refreshes when its inputs change, and the cubes
    /// whose schedule is due; runs until the process ends.
    pub async fn poll(self: Arc<Self>, every: Duration) {
        let mut last = crate::objects::now_ms();
        loop {
            tokio::time::sleep(every).await;
            match self.refresh_if_changed(false).await {
                Ok(Some(cubes)) => {
                    for c in cubes {
                        log::info!("cube {}: {}", c.cube, c.status());
                    }
                }
                Ok(None) => {}
                Err(e) => log::error!("refresh: {e}"),
            }
            let now = crate::objects::now_ms();
            match self.refresh_scheduled(last, now).await {
                Ok(cubes) => {
                    for c in cubes {
                        log::info!("cube {}: {}", c.cube, c.status());
                    }
                }
                Err(e) => log::error!("scheduled refresh: {e}"),
            }
            last = now;
        }
    }
}

fn routes(ctx: &SessionContext) -> Option<Arc<CubeRoutes>> {
    ctx.state().config().get_extension::<CubeRoutes>()
}
