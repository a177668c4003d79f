//! A large, realistic Dockerfile for benchmarks and scale tests: exactly
//! 2,000 instructions in 50 stages, every stage building on or copying from
//! earlier ones, using most instructions and flags. Deterministic.

pub const STAGES: usize = 50;
pub const INSTRUCTIONS: usize = 2_000;

/// The Dockerfile text; it compiles with default options (no image resolver).
pub fn dockerfile() -> String {
    let per_stage = INSTRUCTIONS / STAGES;
    let mut out = String::from("# syntax=docker/dockerfile:1\n");
    let mut count = 0;
    for s in 0..STAGES {
        let mut body = Vec::new();
        body.push(match s {
            0 => "FROM scratch AS s0".to_owned(),
            _ if s % 5 == 0 => format!("FROM s{} AS s{s}", s - 1),
            _ => format!("FROM scratch AS s{s}"),
        });
        body.push(format!("ARG VERSION_{s}=1.{s}.0"));
        body.push(format!("ENV APP_HOME=/opt/app{s} STAGE={s}"));
        body.push("WORKDIR $APP_HOME".to_owned());
        let mut i = 0;
        while body.len() < per_stage {
            let line = match i % 9 {
                0 => format!("COPY --chown=1000:1000 --chmod=644 src/{s}/file{i}.txt ./data/"),
                1 => format!(
                    "RUN --mount=type=cache,target=/root/.cache,id=c{s} \\\n    echo build {i} ${{VERSION_{s}}} > out{i}.txt"
                ),
                2 => format!("LABEL org.example.stage{s}.item{i}=\"value {i}\""),
                3 if s > 0 => format!(
                    "COPY --from=s{} /opt/app{}/ ./from-{}/",
                    s - 1,
                    s - 1,
                    s - 1
                ),
                4 => format!("COPY --link --exclude=*.md docs/{s}/ /docs/{s}/"),
                5 => format!("RUN <<EOF\necho heredoc {i}\ntouch /tmp/{s}-{i}\nEOF"),
                6 => format!("ENV PATH=/opt/app{s}/bin:$PATH"),
                7 => format!("EXPOSE {}/tcp", 8000 + s * 10 + i % 10),
                _ => format!("ADD assets/{s}/bundle{i}.tar.gz /srv/{s}/"),
            };
            body.push(line);
            i += 1;
        }
        body.truncate(per_stage - 1);
        body.push("CMD [\"/bin/app\", \"--serve\"]".to_owned());
        count += body.len();
        for line in body {
            out.push_str(&line);
            out.push('\n');
        }
        out.push('\n');
    }
    assert_eq!(count, INSTRUCTIONS);
    out
}
