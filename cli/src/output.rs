//! `-o`/`--output` specs as buildx and buildctl take them: `type=TYPE,k=v,…`, or a
//! bare `PATH` for `type=local,dest=PATH`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use buildd_proto::control::Exporter;

use crate::session::export::ExportTarget;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid output {spec:?}: {message}")]
pub struct OutputError {
    spec: String,
    message: String,
}

/// The exporter to ask the daemon for, and where its stream goes here.
pub fn parse(spec: &str) -> Result<(Exporter, ExportTarget), OutputError> {
    let bad = |message: &str| OutputError {
        spec: spec.to_owned(),
        message: message.to_owned(),
    };
    let mut attrs = BTreeMap::new();
    if !spec.contains('=') {
        // `-o ./out`, as buildx takes it.
        if spec.is_empty() {
            return Err(bad("empty"));
        }
        attrs.insert("type".to_owned(), "local".to_owned());
        attrs.insert("dest".to_owned(), spec.to_owned());
    } else {
        for field in spec.split(',').filter(|f| !f.is_empty()) {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| bad(&format!("{field:?} is not key=value")))?;
            let k = k.trim().to_ascii_lowercase();
            if attrs.insert(k.clone(), v.trim().to_owned()).is_some() {
                return Err(bad(&format!("{k} given twice")));
            }
        }
    }
    let kind = attrs
        .remove("type")
        .ok_or_else(|| bad("missing type= (oci, docker, tar, local or image)"))?;
    let dest = attrs.get("dest").filter(|d| !d.is_empty()).cloned();
    let target = match kind.as_str() {
        "local" => ExportTarget::Dir(dest.ok_or_else(|| bad("missing dest="))?.into()),
        // The filesystem as one archive: a file, or stdout.
        "tar" => match dest.ok_or_else(|| bad("missing dest= (a file, or - for stdout)"))? {
            d if d == "-" => ExportTarget::Stdout,
            d => ExportTarget::File(d.into()),
        },
        "oci" | "docker" => {
            let dest = dest.ok_or_else(|| bad("missing dest= (a file, or - for stdout)"))?;
            let tar = match attrs.get("tar").map(String::as_str) {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => return Err(bad(&format!("tar={other}: want true or false"))),
            };
            match (dest.as_str(), tar) {
                ("-", true) => ExportTarget::Stdout,
                ("-", false) => return Err(bad("tar=false needs a directory, not stdout")),
                // An OCI layout directory comes as a tar stream of its files.
                (_, false) => ExportTarget::Dir(PathBuf::from(dest)),
                (_, true) => ExportTarget::File(PathBuf::from(dest)),
            }
        }
        "image" => {
            if dest.is_some() {
                return Err(bad("type=image takes no dest="));
            }
            ExportTarget::None
        }
        other => {
            return Err(bad(&format!(
                "unknown type {other:?}; supported: oci, docker, tar, local, image"
            )));
        }
    };
    Ok((
        Exporter {
            r#type: kind,
            attrs,
        },
        target,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_and_targets() {
        let (e, t) = parse("type=oci,dest=out.tar,name=app:1").unwrap();
        assert_eq!(e.r#type, "oci");
        assert_eq!(e.attrs.get("name").map(String::as_str), Some("app:1"));
        assert_eq!(e.attrs.get("dest").map(String::as_str), Some("out.tar"));
        assert_eq!(t, ExportTarget::File("out.tar".into()));
        assert_eq!(parse("type=docker,dest=-").unwrap().1, ExportTarget::Stdout);
        assert_eq!(parse("type=tar,dest=-").unwrap().1, ExportTarget::Stdout);
        assert_eq!(
            parse("type=tar,dest=fs.tar").unwrap().1,
            ExportTarget::File("fs.tar".into())
        );
        assert_eq!(
            parse("type=oci,dest=layout,tar=false").unwrap().1,
            ExportTarget::Dir("layout".into())
        );
        assert_eq!(
            parse("type=local,dest=out").unwrap().1,
            ExportTarget::Dir("out".into())
        );
        let (e, t) = parse("./out").unwrap();
        assert_eq!(
            (e.r#type.as_str(), t),
            ("local", ExportTarget::Dir("./out".into()))
        );
        assert_eq!(parse("type=image,name=x").unwrap().1, ExportTarget::None);
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        for (spec, msg) in [
            ("dest=x", "missing type="),
            ("type=oci", "missing dest="),
            ("type=local", "missing dest="),
            ("type=tar", "missing dest="),
            ("type=registry,name=x", "unknown type \"registry\""),
            ("type=oci,dest=x,tar=maybe", "tar=maybe"),
            ("type=oci,dest=-,tar=false", "needs a directory"),
            ("type=oci,dest=a,dest=b", "dest given twice"),
            ("type=image,dest=x", "no dest="),
        ] {
            let err = parse(spec).unwrap_err().to_string();
            assert!(err.contains(msg) && err.contains(spec), "{spec}: {err}");
        }
    }
}
