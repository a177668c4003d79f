//! An opened engine: a root and the solver over it. One per process.

use std::path::Path;
use std::sync::Arc;

use crate::ops::BuildWorker;
use crate::root::{Root, RootError};
use crate::solver::{Solver, SolverConfig};

pub struct Engine {
    pub root: Arc<Root>,
    pub solver: Solver<BuildWorker>,
}

impl Engine {
    pub fn open(root: &Path, config: SolverConfig) -> Result<Self, RootError> {
        let root = Arc::new(Root::open(root)?);
        let solver = Solver::new(BuildWorker::new(root.clone()), root.index.clone(), config);
        Ok(Self { root, solver })
    }

    /// Makes the build's layers and then the cache index durable; called at the end
    /// of every build.
    pub fn flush(&self) -> Result<(), RootError> {
        self.root.flush()
    }
}
