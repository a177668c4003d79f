//! Instructions that only change the image config (no LLB vertex): each adds an
//! `empty_layer` history entry like BuildKit's.

use buildd_oci::{Empty, Healthcheck};

use super::Dispatcher;
use crate::compile::image::{self, go_quoted_list, parse_duration, set_env};
use crate::error::Error;
use crate::instructions::{ArgDecl, CommandLine, HealthCmd, Located, Pair};
use crate::parser::Node;

impl Dispatcher<'_, '_, '_> {
    pub(super) fn cmd(
        &mut self,
        node: &Node,
        c: &CommandLine,
        entrypoint: bool,
    ) -> Result<(), Error> {
        let keyword = if entrypoint { "ENTRYPOINT" } else { "CMD" };
        // BuildKit's exception: with a custom SHELL (of this stage or
        // inherited) the shell form is deliberate.
        if c.shell_form && self.image.config.shell.is_empty() {
            self.ctx.warn(
                node,
                "JSONArgsRecommended",
                format!(
                    "JSON arguments recommended for {keyword} to prevent unintended behavior related to OS signals"
                ),
            );
        }
        let args = self.with_shell(c.shell_form, c.args);
        self.history(true, || format!("{keyword} {}", go_quoted_list(&args)));
        if entrypoint {
            self.image.config.entrypoint = Some(args);
            // A new entrypoint makes an inherited CMD meaningless.
            if !self.cmd_set {
                self.image.config.cmd = None;
            }
        } else {
            self.image.config.cmd = Some(args);
            self.cmd_set = true;
        }
        Ok(())
    }

    pub(super) fn arg(&mut self, node: &Node, args: &[ArgDecl]) -> Result<(), Error> {
        let mut history = Vec::with_capacity(args.len());
        for (key, default) in args {
            let key = self.expand(node, key)?.into_owned();
            let default = match default {
                Some(d) => Some(self.expand(node, d)?.into_owned()),
                None => None,
            };
            if self.keep_history {
                history.push(match &default {
                    Some(d) => format!("{key}={d}"),
                    None => key.clone(),
                });
            }
            let value = match self.ctx.opts.build_args.get(&key) {
                Some(v) => Some(v.clone()),
                None => default.or_else(|| {
                    let meta = self.ctx.meta_env(&self.stages.meta_args);
                    crate::shell::Env::get(&meta, &key).map(str::to_owned)
                }),
            };
            // Without a value of its own, an ARG the stage already has (from
            // its base stage or an earlier ARG) keeps that value, as BuildKit's
            // state keeps it (tests/parity/cases/arg-redeclared).
            let value = value.or_else(|| {
                self.args
                    .iter()
                    .find(|(k, _)| *k == key)
                    .and_then(|(_, v)| v.clone())
            });
            self.ctx.consumed.insert(key.clone());
            self.args.retain(|(k, _)| *k != key);
            self.args.push((key, value));
        }
        self.history(true, || format!("ARG {}", history.join(" ")));
        Ok(())
    }

    pub(super) fn env(&mut self, node: &Node, pairs: &[Pair]) -> Result<(), Error> {
        // Every value sees the variables as they were before this instruction.
        let mut expanded = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let k = self.expand(node, k)?;
            if k.is_empty() {
                return Err(self.ctx.error(node, "names can not be blank".to_owned()));
            }
            expanded.push((k, self.expand(node, v)?));
        }
        for (k, v) in &expanded {
            set_env(&mut self.image.config.env, k, v);
        }
        self.history(true, || {
            let text: Vec<String> = expanded.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("ENV {}", text.join(" "))
        });
        Ok(())
    }

    pub(super) fn label(&mut self, node: &Node, pairs: &[Pair]) -> Result<(), Error> {
        let mut text = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let k = self.expand(node, k)?;
            let v = self.expand(node, v)?;
            if self.keep_history {
                text.push(format!("{k}={v}"));
            }
            self.image
                .config
                .labels
                .insert(k.into_owned(), v.into_owned());
        }
        self.history(true, || format!("LABEL {}", text.join(" ")));
        Ok(())
    }

    pub(super) fn expose(&mut self, node: &Node, ports: &[String]) -> Result<(), Error> {
        let mut specs = Vec::with_capacity(ports.len());
        for p in ports {
            let p = self.expand(node, p)?;
            let spec = image::parse_port(&p).map_err(|m| self.ctx.error(node, m))?;
            if spec.proto_not_lower {
                self.ctx.warn(
                    node,
                    "ExposeProtoCasing",
                    format!("Defined protocol '{p}' in EXPOSE instruction should be lowercase"),
                );
            }
            if spec.mapping {
                self.ctx.warn(
                    node,
                    "ExposeInvalidFormat",
                    format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{p}'"),
                );
            }
            for key in spec.keys {
                self.image.config.exposed_ports.insert(key, Empty {});
            }
            specs.push(p);
        }
        self.history(true, || format!("EXPOSE {}", specs.join(" ")));
        Ok(())
    }

    pub(super) fn volume(&mut self, node: &Node, volumes: &[String]) -> Result<(), Error> {
        let mut list = Vec::with_capacity(volumes.len());
        for v in volumes {
            let v = self.expand(node, v)?.into_owned();
            if v.trim().is_empty() {
                return Err(self.ctx.error(
                    node,
                    "VOLUME specified can not be an empty string".to_owned(),
                ));
            }
            self.image.config.volumes.insert(v.clone(), Empty {});
            list.push(v);
        }
        self.history(true, || format!("VOLUME [{}]", list.join(" ")));
        Ok(())
    }

    pub(super) fn stop_signal(&mut self, node: &Node, s: &str) -> Result<(), Error> {
        let s = self.expand(node, s)?.into_owned();
        let valid = !s.is_empty()
            && (s.bytes().all(|b| b.is_ascii_digit())
                || s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-'));
        if !valid {
            return Err(self.ctx.error(node, format!("invalid signal {s:?}")));
        }
        self.history(true, || format!("STOPSIGNAL {s}"));
        self.image.config.stop_signal = s;
        Ok(())
    }

    pub(super) fn healthcheck(&mut self, node: &Node, h: &HealthCmd) -> Result<(), Error> {
        let health = healthcheck(self, node, h)?;
        self.history(true, || format!("HEALTHCHECK {}", health_history(&health)));
        self.image.config.healthcheck = Some(health);
        Ok(())
    }
}

const MIN_INTERVAL_NS: i64 = 1_000_000;

pub(super) fn healthcheck(
    d: &Dispatcher<'_, '_, '_>,
    node: &Node,
    h: &HealthCmd,
) -> Result<Healthcheck, Error> {
    let duration = |flag: &Option<Located>, name: &str| -> Result<i64, Error> {
        let Some(l) = flag else { return Ok(0) };
        let v = d.expand(node, l.value)?;
        let ns = parse_duration(&v).map_err(|m| d.ctx.error_at(node, l.span, m))?;
        if ns != 0 && ns < MIN_INTERVAL_NS {
            return Err(d
                .ctx
                .error_at(node, l.span, format!("--{name} cannot be less than 1ms")));
        }
        if ns < 0 {
            return Err(d
                .ctx
                .error_at(node, l.span, format!("--{name} cannot be negative")));
        }
        Ok(ns)
    };
    let retries = match &h.retries {
        Some(l) => {
            let v = d.expand(node, l.value)?;
            let n: i32 = v.parse().map_err(|_| {
                d.ctx
                    .error_at(node, l.span, format!("invalid --retries value {v:?}"))
            })?;
            if n < 0 {
                return Err(d.ctx.error_at(
                    node,
                    l.span,
                    format!("--retries cannot be negative ({n})"),
                ));
            }
            n
        }
        None => 0,
    };
    Ok(Healthcheck {
        test: h.test.clone(),
        interval: duration(&h.interval, "interval")?,
        timeout: duration(&h.timeout, "timeout")?,
        start_period: duration(&h.start_period, "start-period")?,
        start_interval: duration(&h.start_interval, "start-interval")?,
        retries,
    })
}

/// What BuildKit writes: Go's `%q` of the health config struct, e.g.
/// `&{["CMD-SHELL" "curl x"] "30s" "3s" "0s" "0s" '\x03'}`.
fn health_history(h: &Healthcheck) -> String {
    format!(
        "&{{{} \"{}\" \"{}\" \"{}\" \"{}\" {}}}",
        go_quoted_list(&h.test),
        go_duration(h.interval),
        go_duration(h.timeout),
        go_duration(h.start_period),
        go_duration(h.start_interval),
        go_quote_rune(h.retries),
    )
}

/// Go's `time.Duration.String` for the common cases (whole units and
/// sub-second values).
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_owned();
    }
    let trim = |v: f64, unit: &str| {
        let s = format!("{v:.9}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{unit}")
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return trim(ns as f64 / 1e3, "µs");
    }
    if ns < 1_000_000_000 {
        return trim(ns as f64 / 1e6, "ms");
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = trim((ns % 60_000_000_000) as f64 / 1e9, "s");
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// Go's `%q` of an int: a quoted rune literal.
fn go_quote_rune(n: i32) -> String {
    match u8::try_from(n) {
        Ok(b) if b.is_ascii_graphic() && b != b'\'' && b != b'\\' => format!("'{}'", b as char),
        Ok(b'\'') => "'\\''".to_owned(),
        Ok(b'\\') => "'\\\\'".to_owned(),
        Ok(b' ') => "' '".to_owned(),
        Ok(b) if b < 0x80 => format!("'\\x{b:02x}'"),
        _ => format!("'\\u{:04x}'", n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(250_000_000), "250ms");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_quote_rune(3), "'\\x03'");
        assert_eq!(go_quote_rune(65), "'A'");
    }
}
