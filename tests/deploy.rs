//! What users deploy with, checked against the configuration wabaflow actually reads: the shipped
//! `config/wabaflow.toml`, the image (`Dockerfile`), `docker-compose.yml` (which cannot run here:
//! no Docker engine), and every `WABAFLOW_<SECTION>__<KEY>` variable that a script, a test or a
//! document names; and the tenant files of `wabaflow tenants put`. An unknown key makes
//! `Config::load` (or `read_tenants`) fail, so a renamed key that a deployment file still uses
//! shows up here, not as a silently ignored setting in someone's stack.

use std::path::{Path, PathBuf};

use wabaflow_pipeline::Config;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|err| panic!("{relative}: {err}"))
}

/// `NAME: value` lines of `docker-compose.yml` whose name starts with `WABAFLOW_`, with compose's
/// `${VAR:-default}` taking its default and `${VAR:?message}` (a required variable) `required`.
fn compose_environment(compose: &str, required: &str) -> Vec<(String, String)> {
    compose
        .lines()
        .filter_map(|line| line.trim().split_once(": "))
        .filter(|(name, _)| name.starts_with("WABAFLOW_"))
        .map(|(name, value)| {
            let value = match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                Some(expr) => match expr.split_once(":-") {
                    Some((_, default)) => default.to_owned(),
                    None => {
                        assert!(expr.contains(":?"), "{name}: unexpected `{value}`");
                        required.to_owned()
                    }
                },
                None => value.to_owned(),
            };
            (name.to_owned(), value)
        })
        .collect()
}

#[test]
fn the_shipped_configuration_file_loads_with_every_key_known() {
    let config = Config::load(Some(&root().join("config/wabaflow.toml"))).expect("loads");
    assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
    assert_eq!(config.admin.listen.port(), 9100);
}

#[test]
#[allow(clippy::result_large_err)]
fn the_files_commented_tenant_loads_once_uncommented_and_a_misspelt_field_is_named() {
    let shipped = read("config/wabaflow.toml");
    let example: String = shipped
        .lines()
        .skip_while(|line| *line != "# [[tenants]]")
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(example.contains("[tenants.genesys]"), "{example}");
    figment::Jail::expect_with(|jail| {
        jail.create_file("tenant.toml", &example)?;
        let config = Config::load(Some(Path::new("tenant.toml"))).map_err(|err| *err)?;
        assert_eq!(config.tenants.len(), 1);
        assert_eq!(config.tenants[0].id, "acme");

        // `[tenants.genesys]` is the example's last table.
        jail.create_file("tenant.toml", &format!("{example}integration = \"typo\"\n"))?;
        let err = Config::load(Some(Path::new("tenant.toml")))
            .expect_err("a field a tenant's Genesys integration does not have")
            .to_string();
        assert!(err.contains("`tenants.0.genesys.integration`"), "{err}");
        Ok(())
    });
}

#[test]
fn the_image_reads_the_file_it_copies() {
    let dockerfile = read("Dockerfile");
    let env = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("ENV WABAFLOW_CONFIG="))
        .expect("the image names its configuration file");
    assert!(
        dockerfile
            .lines()
            .any(|line| line == format!("COPY config/wabaflow.toml {env}")),
        "the image copies config/wabaflow.toml to {env}"
    );
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
fn docker_compose_sets_only_keys_that_exist_and_its_services_agree() {
    let compose = read("docker-compose.yml");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // 32 bytes, base64
    let environment = compose_environment(&compose, key);
    assert!(environment.len() >= 10, "{environment:?}");
    let mut loaded = None;
    figment::Jail::expect_with(|jail| {
        for (name, value) in &environment {
            jail.set_env(name, value);
        }
        // As the image runs it: its file, then the environment.
        loaded =
            Some(Config::load(Some(&root().join("config/wabaflow.toml"))).map_err(|err| *err)?);
        Ok(())
    });
    let config = loaded.expect("loaded");

    // Each service reaches the others where compose puts them.
    assert_eq!(config.kafka.brokers, "kafka:9092");
    assert!(compose.contains("KAFKA_ADVERTISED_LISTENERS: PLAINTEXT://kafka:9092"));
    assert_eq!(config.store.redis_url, "redis://redis:6379");
    assert_eq!(config.objects.s3_endpoint, "http://minio:9000");
    assert_eq!(config.clickhouse.url, "http://clickhouse:8123");
    assert_eq!(config.tenancy.encryption_key.expose(), key);
    // What it listens on is published, and Prometheus scrapes the admin port.
    let (ingest, admin) = (config.ingest.listen, config.admin.listen);
    assert!(ingest.ip().is_unspecified() && admin.ip().is_unspecified());
    let published = format!(
        "ports: [\"{0}:{0}\", \"{1}:{1}\"]",
        ingest.port(),
        admin.port()
    );
    assert!(
        compose.contains(&published),
        "compose publishes {published}"
    );
    let prometheus = read("deploy/prometheus.yml");
    assert!(
        prometheus.contains(&format!("\"wabaflow:{}\"", admin.port())),
        "{prometheus}"
    );
}

#[test]
fn every_path_docker_compose_mounts_exists() {
    let compose = read("docker-compose.yml");
    let mounts: Vec<&str> = compose
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- ./"))
        .filter_map(|mount| mount.split_once(':').map(|(host, _)| host))
        .collect();
    assert!(mounts.len() >= 4, "{mounts:?}");
    for host in mounts {
        assert!(
            root().join(host).exists(),
            "compose mounts ./{host}, which is missing"
        );
    }
}

/// Every text file of the repository that a person or a script reads for settings.
fn text_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                text_files(&path, found);
            }
        } else if name == "Dockerfile"
            || ["md", "sh", "yml", "yaml", "toml", "js", "rs"]
                .iter()
                .any(|ext| name.ends_with(&format!(".{ext}")))
        {
            found.push(path);
        }
    }
}

/// `WABAFLOW_A__B…` names in `text` (a `__` makes a variable configuration).
fn configuration_variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("WABAFLOW_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches('_');
        if name.contains("__") {
            names.push(name.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_configuration_variable_the_repository_names_is_a_key() {
    let known = serde_json::to_value(Config::default()).expect("serializes");
    let mut files = Vec::new();
    text_files(&root(), &mut files);
    let mut checked = 0;
    // This file and the configuration's own tests name misspelt variables on purpose.
    let on_purpose = [
        root().join("tests/deploy.rs"),
        root().join("pipeline/src/config.rs"),
    ];
    for file in files.into_iter().filter(|file| !on_purpose.contains(file)) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for name in configuration_variables(&text) {
            let path = name["WABAFLOW_".len()..].to_lowercase();
            let found = path
                .split("__")
                .try_fold(&known, |value, key| value.as_object()?.get(key));
            assert!(
                found.is_some(),
                "{} names {name}, which is not a configuration key",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} names found");
}

#[test]
fn names_are_read_as_a_shell_would() {
    assert_eq!(
        configuration_variables(
            "set `WABAFLOW_KAFKA__PARTITIONS=4`, WABAFLOW_REDIS_URL and WABAFLOW_<SECTION>__<KEY>"
        ),
        ["WABAFLOW_KAFKA__PARTITIONS"]
    );
    assert_eq!(
        compose_environment(
            "      WABAFLOW_X__Y: ${A:-d}\n      WABAFLOW_X__Z: ${B:?set B}\n  other: 1",
            "r"
        ),
        [
            ("WABAFLOW_X__Y".to_owned(), "d".to_owned()),
            ("WABAFLOW_X__Z".to_owned(), "r".to_owned())
        ]
    );
}

#[test]
fn a_tenant_file_with_a_field_tenants_do_not_have_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("wabaflow-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let tenant = serde_json::json!({
        "id": "acme",
        "phone_number_id": "106540352242922",
        "app_secret": "s", "verify_token": "v", "whatsapp_token": "w",
        "genesys": {
            "region": "mypurecloud.ie", "integration_id": "i",
            "client_id": "c", "client_secret": "cs", "webhook_secret": "ws"
        }
    });
    let one = dir.join("one.json");
    std::fs::write(&one, tenant.to_string()).expect("write");
    let read = wabaflow::node::read_tenants(&one).expect("a whole tenant");
    assert_eq!(read[0].genesys.webhook_secret.expose(), "ws");

    let mut misspelt = tenant.clone();
    let genesys = misspelt["genesys"].as_object_mut().expect("object");
    let secret = genesys.remove("webhook_secret").expect("present");
    genesys.insert("webhok_secret".into(), secret);
    std::fs::write(&one, misspelt.to_string()).expect("write");
    let err = wabaflow::node::read_tenants(&one).expect_err("a misspelt field");
    assert!(
        err.to_string()
            .contains("unknown tenant fields: genesys.webhok_secret"),
        "{err:#}"
    );

    let many = dir.join("many.toml");
    let list = serde_json::json!({ "tenants": [tenant.clone(), tenant], "tenant": "stray" });
    let toml_text = toml::to_string(&list).expect("toml");
    std::fs::write(&many, toml_text).expect("write");
    let err = wabaflow::node::read_tenants(&many).expect_err("a key beside the list");
    assert!(
        err.to_string().ends_with("unknown tenant fields: tenant"),
        "{err:#}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
