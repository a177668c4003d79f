//! `# syntax=`: BuildKit runs the named image as the frontend. buildd has one
//! frontend, its own, which implements the `docker/dockerfile:1` language. A
//! directive naming that image (any tag or digest, `-upstream` or `labs`
//! included) needs nothing more; any other image is an external frontend that
//! buildd cannot run, which is a warning, and the build goes on with the
//! built-in frontend (docs: README "Dockerfile frontend").

use crate::error::Warning;
use crate::parser::Ast;

/// The rule name of the warning, as the build prints it.
pub(crate) const RULE: &str = "UnsupportedFrontend";

/// The warning for the Dockerfile's `# syntax=` directive, if it names a
/// frontend other than the Dockerfile one.
pub(crate) fn check(ast: &Ast) -> Option<Warning> {
    let d = ast.directives.iter().find(|d| d.name == "syntax")?;
    if is_dockerfile_frontend(&d.value) {
        return None;
    }
    Some(Warning {
        rule: RULE.to_owned(),
        line: d.line,
        message: format!(
            "# syntax={}: buildd does not run external frontends; building with its built-in Dockerfile frontend (docker/dockerfile:1)",
            d.value
        ),
    })
}

/// `docker/dockerfile[-upstream][:TAG][@DIGEST]`, on Docker Hub by any of its
/// names.
fn is_dockerfile_frontend(image: &str) -> bool {
    let name = image.split('@').next().unwrap_or(image);
    // A tag follows the last `:` after the last `/` (a registry port does not).
    let name = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    let name = ["docker.io/", "index.docker.io/", "registry-1.docker.io/"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    matches!(name, "docker/dockerfile" | "docker/dockerfile-upstream")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dockerfile_frontend_by_any_of_its_names_is_built_in() {
        for s in [
            "docker/dockerfile:1",
            "docker/dockerfile:1.7-labs",
            "docker/dockerfile",
            "docker.io/docker/dockerfile:1@sha256:0123",
            "docker/dockerfile-upstream:master",
        ] {
            assert!(is_dockerfile_frontend(s), "{s}");
        }
        for s in [
            "tonistiigi/dockerfile:runmount",
            "example.com:5000/docker/dockerfile:1",
            "ghcr.io/acme/frontend",
            "docker/dockerfile-evil",
        ] {
            assert!(!is_dockerfile_frontend(s), "{s}");
        }
    }

    #[test]
    fn other_frontends_warn_with_the_directive_line() {
        let (ast, _) = crate::parser::parse_all_named(
            "# syntax=ghcr.io/acme/frontend:2\nFROM scratch\n",
            "Dockerfile",
        );
        let w = check(&ast).unwrap();
        assert_eq!((w.rule.as_str(), w.line), (RULE, 1));
        assert_eq!(
            w.message,
            "# syntax=ghcr.io/acme/frontend:2: buildd does not run external frontends; building with its built-in Dockerfile frontend (docker/dockerfile:1)"
        );
        let (ast, _) = crate::parser::parse_all_named(
            "# syntax=docker/dockerfile:1\nFROM scratch\n",
            "Dockerfile",
        );
        assert!(check(&ast).is_none());
    }
}
