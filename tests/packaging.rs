//! Keeps `packaging/docker/Dockerfile` and `scripts/check-docker-rootfs.sh` in step: the
//! script rebuilds the image's root filesystem without Docker, so every value it uses (what
//! is copied where, the user, the environment, the volume, the port, the health check and the
//! command) must be the one the Dockerfile's final stage has. Also checks the systemd units
//! name the same binary, data directory and backup policy as SPEC 9.

use std::collections::BTreeMap;

const DOCKERFILE: &str = include_str!("../packaging/docker/Dockerfile");
const ROOTFS_SCRIPT: &str = include_str!("../scripts/check-docker-rootfs.sh");

/// One instruction: its keyword in capitals and its arguments, continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The Dockerfile as stages, each a list of instructions starting with its FROM.
fn stages(text: &str) -> Vec<Vec<Instruction>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continuation"
    );
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push(instruction);
    }
    stages
}

fn all<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

fn one<'a>(stage: &'a [Instruction], keyword: &str) -> &'a str {
    let found = all(stage, keyword);
    assert_eq!(found.len(), 1, "exactly one {keyword} in the final stage");
    found[0]
}

/// `--flag=value` options in front of an instruction's arguments, and the rest.
fn options(args: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut flags = BTreeMap::new();
    let mut rest = Vec::new();
    for word in args.split_whitespace() {
        match word.strip_prefix("--").and_then(|w| w.split_once('=')) {
            Some((key, value)) if rest.is_empty() => {
                flags.insert(key.to_string(), value.to_string());
            }
            _ => rest.push(word.to_string()),
        }
    }
    (flags, rest)
}

/// An exec-form JSON array, e.g. `["/jetrack", "healthcheck"]`.
fn exec_form(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json} is not exec form: {e}"))
}

/// `ENV A=1 B=2` as pairs.
fn env_pairs(args: &str) -> Vec<(String, String)> {
    args.split_whitespace()
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("ENV KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The script's `image_*` and `build_output` assignments; arrays `(a b)` become their words.
fn script_values() -> BTreeMap<String, Vec<String>> {
    ROOTFS_SCRIPT
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once('=')?;
            if !(name.starts_with("image_") || name == "build_output")
                || name.contains(char::is_whitespace)
            {
                return None;
            }
            let value = value.trim();
            let words = match value.strip_prefix('(') {
                Some(array) => array
                    .strip_suffix(')')
                    .expect("a one-line array")
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                None => vec![value.to_string()],
            };
            Some((name.to_string(), words))
        })
        .collect()
}

fn value(values: &BTreeMap<String, Vec<String>>, name: &str) -> String {
    let words = values
        .get(name)
        .unwrap_or_else(|| panic!("the script sets {name}"));
    assert_eq!(words.len(), 1, "{name} is one word");
    words[0].clone()
}

#[test]
fn the_rootfs_script_builds_what_the_dockerfile_builds() {
    let stages = stages(DOCKERFILE);
    assert_eq!(stages.len(), 2, "a build stage and the image");
    let build = &stages[0];
    let image = &stages[1];
    let values = script_values();

    // The build stage: the explicit static target, and where its outputs come from.
    let build_name = one(build, "FROM")
        .rsplit_once(" AS ")
        .or_else(|| one(build, "FROM").rsplit_once(" as "))
        .expect("the build stage is named")
        .1
        .to_string();
    let run = all(build, "RUN").join(" && ");
    assert!(
        run.contains("cargo build --release --locked --target x86_64-unknown-linux-gnu"),
        "{run}"
    );
    let build_output = value(&values, "build_output");
    assert!(
        run.contains(&format!("cp {build_output} /out/jetrack")),
        "the image gets the script's binary ({build_output}): {run}"
    );
    let data_mode = value(&values, "image_data_mode");
    assert!(
        run.contains(&format!("mkdir -m 0{data_mode} /out/data")),
        "an empty data dir with mode {data_mode}: {run}"
    );

    // The final stage: nothing but the binary and the empty data dir.
    assert_eq!(one(image, "FROM"), "scratch");
    let copies: Vec<(BTreeMap<String, String>, Vec<String>)> =
        all(image, "COPY").into_iter().map(options).collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(all(image, "ADD").is_empty() && all(image, "RUN").is_empty());
    let user = value(&values, "image_user");
    let (binary_flags, binary) = &copies[0];
    assert_eq!(binary_flags.get("from"), Some(&build_name));
    assert_eq!(binary_flags.get("chown"), None, "the binary stays root's");
    assert_eq!(
        binary,
        &vec!["/out/jetrack".to_string(), value(&values, "image_binary")]
    );
    let (data_flags, data) = &copies[1];
    assert_eq!(data_flags.get("from"), Some(&build_name));
    assert_eq!(data_flags.get("chown"), Some(&user));
    assert_eq!(
        data,
        &vec!["/out/data".to_string(), value(&values, "image_data")]
    );

    // Who runs it, with what environment.
    assert_eq!(one(image, "USER"), user);
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid");
    assert_ne!(uid, 0, "not root");
    let env: Vec<(String, String)> = all(image, "ENV").into_iter().flat_map(env_pairs).collect();
    let script_env: Vec<(String, String)> = values["image_env"]
        .iter()
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(env, script_env);
    let env: BTreeMap<_, _> = env.into_iter().collect();
    let data_dir = value(&values, "image_data");
    assert_eq!(env["JETRACK_DATA_DIR"], data_dir);
    assert_eq!(one(image, "VOLUME"), data_dir);
    assert_eq!(value(&values, "image_volume"), data_dir);
    let port = value(&values, "image_port");
    assert_eq!(one(image, "EXPOSE"), port);
    assert_eq!(env["JETRACK_LISTEN"], format!("0.0.0.0:{port}"));

    // The health check is the binary itself, exec form (there is no shell).
    let healthcheck = one(image, "HEALTHCHECK");
    let (_, cmd) = options(healthcheck);
    assert_eq!(cmd[0], "CMD", "{healthcheck}");
    let cmd = exec_form(&cmd[1..].join(" "));
    assert_eq!(cmd, values["image_healthcheck"]);
    assert_eq!(
        cmd[..2],
        [value(&values, "image_binary"), "healthcheck".into()]
    );

    // What `docker run` starts.
    let mut command = exec_form(one(image, "ENTRYPOINT"));
    command.extend(exec_form(one(image, "CMD")));
    assert_eq!(command, values["image_command"]);
    assert_eq!(command, [value(&values, "image_binary"), "serve".into()]);
}

#[test]
fn the_dockerfile_parser_sees_continuations_and_options() {
    let stages = stages(
        "FROM a AS b\nRUN x \\\n  && y\n# note\nFROM scratch\nCOPY --from=b --chown=1:2 /s /d\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0][1].args, "x && y");
    let (flags, rest) = options(&stages[1][1].args);
    assert_eq!(flags["from"], "b");
    assert_eq!(flags["chown"], "1:2");
    assert_eq!(rest, ["/s", "/d"]);
}

/// `Key=value` lines of a unit file, in order.
fn unit(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn setting(unit: &[(String, String)], key: &str) -> Vec<String> {
    unit.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn the_systemd_units_share_the_user_state_and_binary() {
    let server = unit(include_str!("../packaging/systemd/jetrack.service"));
    let backup = unit(include_str!("../packaging/systemd/jetrack-backup.service"));
    let timer = unit(include_str!("../packaging/systemd/jetrack-backup.timer"));
    for key in ["DynamicUser", "User", "StateDirectory"] {
        assert_eq!(setting(&server, key), setting(&backup, key), "{key}");
    }
    // The same User= gives both units the same dynamic uid, so both can use the files.
    assert_eq!(setting(&server, "User"), ["jetrack"]);
    assert_eq!(setting(&server, "StateDirectory"), ["jetrack"]);
    for unit in [&server, &backup] {
        assert!(setting(unit, "Environment").contains(&"JETRACK_DATA_DIR=%S/jetrack".to_string()));
        assert_eq!(setting(unit, "NoNewPrivileges"), ["yes"]);
        assert_eq!(setting(unit, "ProtectSystem"), ["strict"]);
        assert_eq!(setting(unit, "CapabilityBoundingSet"), [""]);
    }
    assert_eq!(
        setting(&server, "ExecStart"),
        ["/usr/local/bin/jetrack serve"]
    );
    assert_eq!(setting(&server, "Restart"), ["on-failure"]);
    assert_eq!(setting(&server, "KillSignal"), ["SIGTERM"]);
    assert_eq!(
        setting(&backup, "ExecStart"),
        ["/usr/local/bin/jetrack backup --keep 14"]
    );
    assert_eq!(setting(&timer, "OnCalendar"), ["daily"]);
}
