//! Dockerfile frontend: text plus build options in, LLB and an image config out. No I/O.
//!
//! [`parse`] turns text into an [`Ast`] with exact spans ([`parse_with_diagnostics`]
//! goes on past broken instructions and reports them all); [`compile`] types the
//! instructions, expands words ([`shell`]), and builds the LLB graph of the target
//! stage together with the image config it would produce, plus BuildKit's
//! build-check warnings ([`Warning`]; `# check=skip=...;error=true` is
//! honoured). [`check`] reports every broken instruction at once. [`outline`]
//! lists stages and build args without compiling.

mod compile;
mod error;
mod instructions;
mod outline;
pub mod parser;
pub mod shell;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use buildd_oci::Platform;
pub use compile::remote_context;
pub use error::{Diagnostics, Error, Warning};
pub use outline::{Outline, OutlineArg, OutlineStage};
pub use parser::{Ast, Node, parse, parse_with_diagnostics};

/// Options of one build.
#[derive(Clone)]
pub struct BuildOptions {
    /// The Dockerfile's name, e.g. "Dockerfile"; used in errors and `Definition.sources`.
    pub dockerfile_name: String,
    /// The stage to build; the last one when unset.
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    /// Name of the local source holding the build context ("context" gives
    /// `local://context`).
    pub context_name: String,
    /// `.dockerignore` patterns, one per entry, passed on verbatim.
    pub dockerignore: Vec<String>,
    pub platform: Platform,
    /// Resolves `FROM <image>`; without one only `scratch` and stages can be bases.
    pub resolver: Option<Arc<dyn ImageResolver>>,
}

impl BuildOptions {
    /// Options for the `Dockerfile` with context `context` on `platform`.
    pub fn new(platform: Platform) -> Self {
        Self {
            dockerfile_name: "Dockerfile".to_owned(),
            target: None,
            build_args: BTreeMap::new(),
            context_name: "context".to_owned(),
            dockerignore: Vec::new(),
            platform,
            resolver: None,
        }
    }
}

impl fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildOptions")
            .field("dockerfile_name", &self.dockerfile_name)
            .field("target", &self.target)
            .field("build_args", &self.build_args)
            .field("context_name", &self.context_name)
            .field("dockerignore", &self.dockerignore)
            .field("platform", &self.platform)
            .field("resolver", &self.resolver.as_ref().map(|_| "..."))
            .finish()
    }
}

/// An image reference resolved to a pinned reference and its config.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// Canonical and pinned, e.g. `docker.io/library/alpine:3.20@sha256:...`.
    pub reference: String,
    pub config: buildd_oci::ImageConfig,
}

/// Looks up base images; implemented by the engine with its registry client.
pub trait ImageResolver: Send + Sync {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String>;
}

/// The output of [`compile`].
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The target stage's graph; `result` is unset when the stage is an empty
    /// filesystem (only `FROM scratch` and config instructions).
    pub definition: buildd_proto::llb::Definition,
    pub image: buildd_oci::ImageConfig,
    pub warnings: Vec<Warning>,
}

/// Compiles a Dockerfile to LLB for `opts.target` (or the last stage).
pub fn compile(dockerfile: &str, opts: &BuildOptions) -> Result<Compiled, Error> {
    compile::compile(dockerfile, opts)
}

/// [`compile`] of a Dockerfile already parsed from `dockerfile` with [`parse`],
/// so that benchmarks can time compiling apart from parsing.
#[doc(hidden)]
pub fn compile_parsed(dockerfile: &str, ast: &Ast, opts: &BuildOptions) -> Result<Compiled, Error> {
    compile::compile_ast(dockerfile, ast, opts)
}

/// All errors of a Dockerfile rather than the first: every instruction that
/// does not parse or type-check, or else what [`compile`] reports.
pub fn check(dockerfile: &str, opts: &BuildOptions) -> Diagnostics {
    compile::check(dockerfile, opts)
}

/// The stages and build args of a Dockerfile, for `buildd debug outline`.
pub fn outline(dockerfile: &str, opts: &BuildOptions) -> Result<Outline, Error> {
    outline::outline(dockerfile, opts)
}
