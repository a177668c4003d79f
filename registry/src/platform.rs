//! Choosing the manifest for a platform from an index.

use buildd_oci::{Descriptor, Index, Platform};

/// `os/arch[/variant]`.
pub fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) if !v.is_empty() => format!("{}/{}/{v}", p.os, p.architecture),
        _ => format!("{}/{}", p.os, p.architecture),
    }
}

/// Go/containerd spellings folded together: `aarch64` is `arm64`, arm64's `v8` and
/// amd64's `v1` are their default variants, and 32-bit arm defaults to `v7`.
fn normalize(p: &Platform) -> (String, String, String) {
    let os = p.os.to_ascii_lowercase();
    let arch = match p.architecture.to_ascii_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".to_owned(),
        "aarch64" => "arm64".to_owned(),
        "i386" => "386".to_owned(),
        "armhf" | "armel" => "arm".to_owned(),
        a => a.to_owned(),
    };
    let variant = p.variant.clone().unwrap_or_default().to_ascii_lowercase();
    let variant = match (arch.as_str(), variant.as_str()) {
        ("arm64", "8" | "v8") | ("amd64", "v1") => String::new(),
        ("arm", "") => "v7".to_owned(),
        ("arm", v @ ("5" | "6" | "7" | "8")) => format!("v{v}"),
        _ => variant,
    };
    (os, arch, variant)
}

/// The index entry for `want`: an exact match, else (when `want` names no variant)
/// the first entry of the same os and architecture.
pub fn select<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let (os, arch, variant) = normalize(want);
    let with_platform = || {
        index
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| (d, normalize(p))))
    };
    with_platform()
        .find(|(_, p)| p.0 == os && p.1 == arch && p.2 == variant)
        .or_else(|| with_platform().find(|(_, p)| variant.is_empty() && p.0 == os && p.1 == arch))
        .map(|(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plat(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    fn index(platforms: &[Platform]) -> Index {
        Index {
            schema_version: 2,
            media_type: None,
            manifests: platforms
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut d = Descriptor::new(
                        buildd_oci::MEDIA_TYPE_MANIFEST,
                        buildd_proto::Digest::of(&[i as u8]),
                        1,
                    );
                    d.platform = Some(p.clone());
                    d
                })
                .collect(),
            annotations: Default::default(),
        }
    }

    fn pick(idx: &Index, want: Platform) -> Option<usize> {
        select(idx, &want).map(|d| idx.manifests.iter().position(|m| m == d).unwrap())
    }

    #[test]
    fn selects_by_os_arch_and_variant() {
        let idx = index(&[
            plat("linux", "amd64", None),
            plat("linux", "arm", Some("v6")),
            plat("linux", "arm", Some("v7")),
            plat("linux", "arm64", Some("v8")),
            plat("windows", "amd64", None),
            plat("unknown", "unknown", None),
        ]);
        assert_eq!(pick(&idx, plat("linux", "amd64", None)), Some(0));
        assert_eq!(pick(&idx, plat("linux", "x86_64", None)), Some(0));
        assert_eq!(pick(&idx, plat("linux", "arm", Some("v6"))), Some(1));
        assert_eq!(pick(&idx, plat("linux", "arm", None)), Some(2));
        assert_eq!(pick(&idx, plat("linux", "arm64", None)), Some(3));
        assert_eq!(pick(&idx, plat("linux", "aarch64", Some("8"))), Some(3));
        assert_eq!(pick(&idx, plat("windows", "amd64", None)), Some(4));
        assert_eq!(pick(&idx, plat("linux", "arm", Some("v5"))), None);
        assert_eq!(pick(&idx, plat("linux", "s390x", None)), None);
    }

    #[test]
    fn host_platform_is_found_in_a_typical_index() {
        let host = buildd_oci::host_platform();
        let idx = index(&[
            plat("linux", "arm64", Some("v8")),
            plat("linux", "amd64", None),
        ]);
        let want = if host.architecture == "arm64" { 0 } else { 1 };
        if matches!(host.architecture.as_str(), "arm64" | "amd64") {
            assert_eq!(pick(&idx, host), Some(want));
        }
        assert_eq!(
            platform_string(&plat("linux", "arm", Some("v7"))),
            "linux/arm/v7"
        );
    }
}
