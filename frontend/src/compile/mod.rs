//! Typed instructions to LLB and an image config.

mod checks;
mod context;
mod dispatch;
pub use context::remote_context;
mod encode;
mod graph;
mod image;
mod onbuild;
mod remote;
mod stages;
mod syntax;
mod wire;

use std::collections::BTreeSet;

use buildd_proto::llb::SourceInfo;

use crate::error::{Diagnostics, Error, Warning};
use crate::instructions::{self, ParseError};
use crate::parser::{self, Ast, Node, Span};
use crate::shell::{Env, Expanded, Lexer};
use crate::{BuildOptions, Compiled, ResolvedImage};

/// Shared state of one compilation: options, diagnostics, the lexer.
pub(crate) struct Ctx<'o> {
    pub opts: &'o BuildOptions,
    pub file: String,
    pub lexer: Lexer,
    pub warnings: Vec<Warning>,
    /// Build args some ARG declared.
    pub consumed: BTreeSet<String>,
}

impl Ctx<'_> {
    pub(crate) fn error(&self, node: &Node, message: String) -> Error {
        self.error_at(node, node.span, message)
    }

    pub(crate) fn error_at(&self, node: &Node, span: Span, message: String) -> Error {
        Error {
            file: self.file.clone(),
            line: span.start.line,
            column: span.start.column,
            instruction: Some(node.name()),
            message,
        }
    }

    pub(crate) fn warn(&mut self, node: &Node, rule: &str, message: String) {
        self.warnings.push(Warning {
            rule: rule.to_owned(),
            line: node.span.start.line,
            message,
        });
    }

    pub(crate) fn expand(&self, node: &Node, word: &str, env: &dyn Env) -> Result<String, Error> {
        self.lexer
            .process_word(word, env)
            .map_err(|e| self.error(node, e.to_string()))
    }

    pub(crate) fn expand_tracked(
        &self,
        node: &Node,
        word: &str,
        env: &dyn Env,
    ) -> Result<Expanded, Error> {
        self.lexer
            .process_word_tracked(word, env)
            .map_err(|e| self.error(node, e.to_string()))
    }

    /// Resolves `reference` with the build's resolver; errors point at `span`
    /// of `node`.
    pub(crate) fn resolve_image(
        &self,
        node: &Node,
        span: Span,
        reference: &str,
    ) -> Result<ResolvedImage, Error> {
        let Some(resolver) = &self.opts.resolver else {
            let message = if node.name() == "FROM" {
                format!(
                    "FROM {reference}: pulling images needs the registry client, not available yet"
                )
            } else {
                format!("stage {reference:?} not found")
            };
            return Err(self.error_at(node, span, message));
        };
        resolver
            .resolve(reference, &self.opts.platform)
            .map_err(|e| {
                self.error_at(
                    node,
                    span,
                    format!("failed to resolve image {reference:?}: {e}"),
                )
            })
    }

    /// Variables usable in FROM: BuildKit's automatic platform args, then the
    /// global ARGs that have a value.
    pub(crate) fn meta_env(&self, meta: &[(String, Option<String>)]) -> Vec<(String, String)> {
        let p = &self.opts.platform;
        let platform = image::platform_string(p);
        let variant = p.variant.clone().unwrap_or_default();
        let mut env = Vec::new();
        for prefix in ["BUILD", "TARGET"] {
            env.push((format!("{prefix}PLATFORM"), platform.clone()));
            env.push((format!("{prefix}OS"), p.os.clone()));
            env.push((format!("{prefix}ARCH"), p.architecture.clone()));
            env.push((format!("{prefix}VARIANT"), variant.clone()));
        }
        env.extend(
            meta.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?))),
        );
        env
    }
}

pub(crate) fn compile(text: &str, opts: &BuildOptions) -> Result<Compiled, Error> {
    let ast = parser::parse_named(text, &opts.dockerfile_name)?;
    compile_ast(text, &ast, opts)
}

/// Every parse and typing error of the file, each instruction on its own;
/// when there is none, what compiling reports (its first error or its
/// warnings). Compiling a file with broken instructions would only add errors
/// that follow from them.
pub(crate) fn check(text: &str, opts: &BuildOptions) -> Diagnostics {
    let file = &opts.dockerfile_name;
    let (ast, mut errors) = parser::parse_all_named(text, file);
    if let Err(e) = checks::config(&ast, file) {
        errors.push(e);
    }
    for n in &ast.nodes {
        if let Err(e) = instructions::parse(n) {
            errors.push(parse_error(file, n, e));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.column));
        return Diagnostics {
            errors,
            warnings: ast.warnings,
        };
    }
    match compile_ast(text, &ast, opts) {
        Ok(c) => Diagnostics {
            errors,
            warnings: c.warnings,
        },
        Err(e) => Diagnostics {
            errors: vec![e],
            warnings: Vec::new(),
        },
    }
}

pub(crate) fn compile_ast(text: &str, ast: &Ast, opts: &BuildOptions) -> Result<Compiled, Error> {
    let file = opts.dockerfile_name.clone();
    let check_config = checks::config(ast, &file)?;
    let mut ctx = Ctx {
        opts,
        file,
        lexer: Lexer::new(ast.escape),
        warnings: ast.warnings.clone(),
        consumed: BTreeSet::new(),
    };
    ctx.warnings.extend(syntax::check(ast));
    let mut typed = Vec::with_capacity(ast.nodes.len());
    for n in &ast.nodes {
        typed.push(instructions::parse(n).map_err(|e| parse_error(&ctx.file, n, e))?);
    }
    let mut stages = stages::split(&mut ctx, typed)?;
    checks::static_checks(&mut ctx, &stages);
    let target = stages::target(&ctx, &stages)?;
    let reachable = onbuild::resolve_bases(&ctx, &mut stages, target)?;
    // Only the target's image is returned: the history of other stages is
    // needed only where the target builds on them.
    let mut keep_history = vec![false; stages.stages.len()];
    let mut next = Some(target);
    while let Some(i) = next {
        keep_history[i] = true;
        next = match stages.stages[i].base {
            stages::Base::Stage(j) => Some(j),
            _ => None,
        };
    }

    // Most instructions add one vertex.
    let mut graph = graph::Graph::new(ast.nodes.len(), &image::proto_platform(&opts.platform));
    let mut context = dispatch::ContextSource::default();
    let mut built: Vec<Option<dispatch::Built>> = vec![None; stages.stages.len()];
    for (i, needed) in reachable.iter().enumerate() {
        if *needed {
            let b = dispatch::stage(
                &mut ctx,
                &stages,
                i,
                keep_history[i],
                &built,
                &mut graph,
                &mut context,
            )?;
            built[i] = Some(b);
        }
    }
    context.finish(opts, &mut graph);
    checks::finish(&mut ctx, &check_config)?;
    let out = built[target]
        .take()
        .expect("the target stage is dispatched");
    let definition = graph.marshal(
        out.state,
        SourceInfo {
            filename: opts.dockerfile_name.clone(),
            data: text.as_bytes().to_vec(),
            language: "Dockerfile".to_owned(),
        },
    );
    Ok(Compiled {
        definition,
        image: out.image,
        warnings: ctx.warnings,
    })
}

fn parse_error(file: &str, node: &Node, e: ParseError) -> Error {
    Error {
        file: file.to_owned(),
        line: e.span.start.line,
        column: e.span.start.column,
        instruction: e.known.then(|| node.name()),
        message: e.message,
    }
}
