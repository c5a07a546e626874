//! Caching driven by a settings file: two regions drive two functions (TTL and on/off observed), environment
//! overrides, errors that name file, line and key, a missing region refused at install, `enabled = false` on the
//! null backend with one warning — and the oslo.cache quick start (`examples/oslo_style.rs`).

#[path = "../../examples/oslo_style.rs"]
mod oslo_style;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cachette::{cached, Config, ConfigError};

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);
static SEARCH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(region = "profiles", key = "profile:{id}", companions(key))]
async fn profile(id: u64) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    format!("profile {id}")
}

#[cached(region = "search", key = "search:{query}")]
async fn search(query: String) -> Vec<String> {
    SEARCH_RUNS.fetch_add(1, SeqCst);
    vec![query]
}

const SETTINGS: &str = r#"
[cache]
enabled = true
backend = "memory"
expiration_time = 600

[regions.profiles]
caching = true
cache_time = 1

[regions.search]
caching = false

[regions.feature-name]
cache_time = 7200
"#;

fn write_settings(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

/// One test: the global cache and the region table are process-wide.
#[tokio::test]
async fn a_settings_file_drives_the_regions() {
    let (_dir, path) = write_settings(SETTINGS);
    let cache = Config::from_file(&path).unwrap().install().await.unwrap();

    // `profiles`: cached, for 1 s (the region's cache_time, not the 600 s default).
    profile(1).await;
    profile(1).await;
    assert_eq!(PROFILE_RUNS.load(SeqCst), 1);
    let (meta, _) = cache
        .get_with_meta::<String>(&profile_key(1))
        .await
        .unwrap()
        .expect("stored in the global cache");
    assert!(meta
        .remaining_ttl()
        .is_some_and(|ttl| ttl <= Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    profile(1).await;
    assert_eq!(
        PROFILE_RUNS.load(SeqCst),
        2,
        "expired after the region's TTL"
    );

    // `search`: caching = false, so every call runs the body and nothing is stored.
    search("rust".into()).await;
    search("rust".into()).await;
    assert_eq!(SEARCH_RUNS.load(SeqCst), 2);
    assert_eq!(cache.get::<Vec<String>>("search:rust").await.unwrap(), None);

    // An environment override turns `search` on: a reload changes behaviour, no rebuild.
    let mut config = Config::from_file(&path).unwrap();
    config
        .apply_env([(
            "CACHE__REGIONS__SEARCH__CACHING".to_owned(),
            "true".to_owned(),
        )])
        .unwrap();
    config.install().await.unwrap();
    search("rust".into()).await;
    search("rust".into()).await;
    assert_eq!(SEARCH_RUNS.load(SeqCst), 3);

    // The oslo.cache quick start: computed once, served once from the cache.
    let (_oslo_dir, oslo_path) = write_settings(&format!(
        "{SETTINGS}\n# the example's own file, inlined with the regions this binary also uses\n"
    ));
    oslo_style::configure(&oslo_path).await.unwrap();
    assert_eq!(oslo_style::expensive_operation(5).await, 25);
    let (again, hits) = cachette::context::detect(oslo_style::expensive_operation(5)).await;
    assert_eq!((again, hits.is_empty()), (25, false));

    // A region the code uses but the file lacks: refused before anything is installed.
    let missing = Config::from_toml_str("[regions.profiles]\n", "partial.toml")
        .unwrap()
        .install()
        .await
        .unwrap_err();
    match &missing {
        ConfigError::MissingRegions {
            file,
            missing,
            defined,
        } => {
            assert_eq!(file, "partial.toml");
            assert_eq!(missing, &["feature-name", "search"]);
            assert_eq!(defined, &["profiles"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        missing.to_string().contains("feature-name, search"),
        "{missing}"
    );

    // enabled = false: the null backend, every region off, one warning naming the file.
    let logs = test_support::CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let off = SETTINGS.replace("enabled = true", "enabled = false");
    let (_off_dir, off_path) = write_settings(&off);
    Config::from_file(&off_path)
        .unwrap()
        .install()
        .await
        .unwrap();
    let before = PROFILE_RUNS.load(SeqCst);
    profile(7).await;
    profile(7).await;
    drop(guard);
    assert_eq!(PROFILE_RUNS.load(SeqCst), before + 2);
    let text = logs.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cache backend is null"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings[0].contains("enabled = false") && warnings[0].contains(&off_path),
        "{text}"
    );
}

#[test]
fn a_bad_file_is_an_error_naming_file_line_and_key() {
    let (_dir, path) = write_settings(
        "[cache]\nbackend = \"memory\"\n\n[regions.profiles]\ncache_time = \"soon\"\n",
    );
    match Config::from_file(&path).unwrap_err() {
        ConfigError::Invalid {
            file,
            line,
            key,
            message,
        } => {
            assert_eq!(
                (file.as_str(), line, key.as_deref()),
                (path.as_str(), 5, Some("regions.profiles.cache_time"))
            );
            assert!(message.contains("\"soon\""), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let unknown =
        Config::from_toml_str("[cache]\nbackend = \"memory\"\nttl = 5\n", "app.toml").unwrap_err();
    assert!(
        unknown
            .to_string()
            .starts_with("app.toml:3: unknown field `ttl`"),
        "{unknown}"
    );
    let missing = Config::from_file("/nonexistent/settings.toml").unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }), "{missing}");
}
