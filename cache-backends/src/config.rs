//! Caching driven by a settings file, as oslo.cache and dogpile.cache do it: a `[cache]` section picks the backend
//! and switches caching on or off, and each `[regions.NAME]` group tunes the functions marked
//! `#[cached(region = "NAME")]` — without a rebuild.
//!
//! ```toml
//! [cache]
//! enabled = true
//! backend = "memory"          # memory | redis | null, or any setup URL ("redis://cache:6379/0")
//! expiration_time = 600       # seconds, or "10m"; the default TTL of the regions
//! key_prefix = "myapp:"       # shared backends only (redis)
//! compress = true             # LZ4 for large values
//! secret = "env:CACHE_SECRET" # sign values with the secret in this environment variable
//! hash_keys_over = 200        # hash keys longer than this
//!
//! [cache.backend_arguments]   # the backend's URL options
//! pool_size = 4
//! command_timeout = "250ms"
//!
//! [regions.feature-name]
//! caching = true
//! cache_time = 7200
//! backend = "redis://other:6379/1"   # optional: the region's own cache
//! ```
//!
//! Environment variables override the file: `CACHE__ENABLED`, `CACHE__BACKEND`, `CACHE__EXPIRATION_TIME`,
//! `CACHE__KEY_PREFIX`, `CACHE__COMPRESS`, `CACHE__SECRET`, `CACHE__HASH_KEYS_OVER`,
//! `CACHE__BACKEND_ARGUMENTS__<OPTION>` and `CACHE__REGIONS__<NAME>__<CACHING|CACHE_TIME|BACKEND>` (names
//! case-insensitive, `_` matching `-` in region names).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cache_backends::ConfigError> {
//! let config = cache_backends::Config::from_toml_str(
//!     "[cache]\nbackend = \"memory\"\n[regions.users]\ncache_time = 7200\n",
//!     "settings.toml",
//! )?;
//! assert_eq!(config.regions["users"].cache_time, Some(std::time::Duration::from_secs(7200)));
//! config.install().await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use cache_core::regions::{self, Region};
use cache_core::{Cache, NullBackend};
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::setup::{Setup, SetupError};

/// A whole settings file: the `[cache]` section and the `[regions.*]` groups.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// `[cache]`.
    #[serde(default)]
    pub cache: CacheSection,
    /// `[regions.NAME]`, by name.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionSection>,
    /// Where the settings came from, for messages (`settings.toml`, `environment`, `code`).
    #[serde(skip)]
    pub origin: String,
}

/// The `[cache]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheSection {
    /// `false`: the null backend (nothing cached) and every region off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `memory`, `redis`, `memcached`, `null` or a setup URL.
    #[serde(default = "memory")]
    pub backend: String,
    /// The default TTL of the regions (integer seconds or a duration such as `"10m"`).
    #[serde(default, deserialize_with = "duration")]
    pub expiration_time: Option<Duration>,
    /// A prefix for every key, for backends shared by several applications.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// LZ4 compression of large values.
    #[serde(default)]
    pub compress: bool,
    /// `env:NAME`: sign values with the secret in that environment variable.
    #[serde(default)]
    pub secret: Option<String>,
    /// Hash keys longer than this many bytes.
    #[serde(default)]
    pub hash_keys_over: Option<usize>,
    /// The backend's URL options (`pool_size`, `command_timeout`, `size`, …).
    #[serde(default)]
    pub backend_arguments: BTreeMap<String, Scalar>,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection {
            enabled: true,
            backend: "memory".to_owned(),
            expiration_time: None,
            key_prefix: None,
            compress: false,
            secret: None,
            hash_keys_over: None,
            backend_arguments: BTreeMap::new(),
        }
    }
}

/// A `[regions.NAME]` group.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RegionSection {
    /// `false`: the region's functions run their bodies and never touch the cache.
    #[serde(default = "yes")]
    pub caching: bool,
    /// The TTL of the region's entries (default: `[cache] expiration_time`, then the function's own `ttl`).
    #[serde(default, deserialize_with = "duration")]
    pub cache_time: Option<Duration>,
    /// The region's own backend (a name or URL as in `[cache] backend`).
    #[serde(default)]
    pub backend: Option<String>,
}

impl Default for RegionSection {
    fn default() -> Self {
        RegionSection {
            caching: true,
            cache_time: None,
            backend: None,
        }
    }
}

/// A backend argument: TOML gives strings, integers, floats or booleans; URLs take them as text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Text(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(value) => write!(f, "{value}"),
            Scalar::Int(value) => write!(f, "{value}"),
            Scalar::Float(value) => write!(f, "{value}"),
            Scalar::Text(value) => f.write_str(value),
        }
    }
}

/// What can go wrong loading or installing settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read cache settings {file}: {error}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a bad value.
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The file (or `environment` for an override).
        file: String,
        /// The line of the offending key (1-based; 0 when unknown).
        line: usize,
        /// The key, dotted (`cache.expiration_time`), when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A region the code refers to has no `[regions.NAME]` group.
    #[error(
        "cache settings {file} lack regions the code refers to: {} (defined: {})",
        missing.join(", "),
        if defined.is_empty() { "none".to_owned() } else { defined.join(", ") }
    )]
    MissingRegions {
        /// The settings' origin.
        file: String,
        /// Referenced but not defined.
        missing: Vec<String>,
        /// Defined in the settings.
        defined: Vec<String>,
    },
    /// Building a backend failed.
    #[error("cache settings {file}: {error}")]
    Setup {
        /// The settings' origin.
        file: String,
        /// The set-up error.
        error: SetupError,
    },
}

impl Config {
    /// Reads a TOML file, then applies the `CACHE__*` environment variables over it.
    ///
    /// # Example
    /// ```no_run
    /// # async fn run() -> Result<(), cache_backends::ConfigError> {
    /// cache_backends::Config::from_file("settings.toml")?.install().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: file.clone(),
            error,
        })?;
        let mut config = Config::from_toml_str(&text, &file)?;
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    /// Parses settings from TOML text; `origin` names it in errors. No environment overrides.
    ///
    /// # Example
    /// ```
    /// let error = cache_backends::Config::from_toml_str("[cache]\nenabeld = true\n", "app.toml").unwrap_err();
    /// assert!(error.to_string().starts_with("app.toml:2: unknown field `enabeld`"), "{error}");
    /// ```
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ConfigError::Invalid {
                file: origin.to_owned(),
                line,
                key: key_at(text, error.span()),
                message: error.message().to_owned(),
            }
        })?;
        config.origin = origin.to_owned();
        Ok(config)
    }

    /// Applies `CACHE__*` variables (as [`std::env::vars`] gives them) over these settings.
    ///
    /// # Example
    /// ```
    /// let mut config = cache_backends::Config::default();
    /// config.apply_env([("CACHE__ENABLED".to_owned(), "false".to_owned())]).unwrap();
    /// assert!(!config.cache.enabled);
    /// ```
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(path) = name.strip_prefix("CACHE__") else {
                continue;
            };
            let parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
            let bad = |message: String| ConfigError::Invalid {
                file: "environment".to_owned(),
                line: 0,
                key: Some(name.clone()),
                message,
            };
            match parts.as_slice() {
                [key] => self.cache.set(key, &value).map_err(bad)?,
                [section, option] if section == "backend_arguments" => {
                    self.cache
                        .backend_arguments
                        .insert(option.clone(), Scalar::Text(value.clone()));
                }
                [section, region, key] if section == "regions" => {
                    let name = self
                        .regions
                        .keys()
                        .find(|name| {
                            name.to_ascii_lowercase().replace('-', "_") == region.replace('-', "_")
                        })
                        .cloned()
                        .unwrap_or_else(|| region.replace('_', "-"));
                    self.regions
                        .entry(name)
                        .or_default()
                        .set(key, &value)
                        .map_err(bad)?;
                }
                _ => return Err(bad(format!("unknown cache setting {name}"))),
            }
        }
        Ok(())
    }

    /// The setup URL of a backend name or URL, with this section's key prefix, layers and arguments.
    fn url_for(&self, backend: &str) -> Result<String, ConfigError> {
        let base = match backend {
            "memory" | "mem" => "mem://".to_owned(),
            "redis" => "redis://127.0.0.1:6379/0".to_owned(),
            "null" => "null://".to_owned(),
            "memcached" => "memcached://127.0.0.1:11211".to_owned(),
            url if url.contains("://") => url.to_owned(),
            other => {
                return Err(ConfigError::Invalid {
                    file: self.origin.clone(),
                    line: 0,
                    key: Some("cache.backend".to_owned()),
                    message: format!(
                        "unknown backend {other:?}: use memory, redis, memcached, null or a URL such as redis://host:6379/0"
                    ),
                })
            }
        };
        let section = &self.cache;
        let mut options: Vec<(String, String)> = section
            .backend_arguments
            .iter()
            .map(|(name, value)| (name.clone(), value.to_string()))
            .collect();
        if let Some(prefix) = &section.key_prefix {
            options.push(("prefix".to_owned(), prefix.clone()));
        }
        if section.compress {
            options.push(("compress".to_owned(), "lz4".to_owned()));
        }
        if let Some(secret) = &section.secret {
            options.push(("secret".to_owned(), secret.clone()));
        }
        if let Some(limit) = section.hash_keys_over {
            options.push(("hash_keys_over".to_owned(), limit.to_string()));
        }
        let mut url = base;
        for (name, value) in options {
            let separator = if url.contains('?') { '&' } else { '?' };
            let value: String =
                percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            url = format!("{url}{separator}{name}={value}");
        }
        Ok(url)
    }

    async fn build(&self, backend: &str) -> Result<Cache, ConfigError> {
        let url = self.url_for(backend)?;
        Setup::new(url)
            .build()
            .await
            .map_err(|error| ConfigError::Setup {
                file: self.origin.clone(),
                error,
            })
    }

    /// Builds the caches, installs the main one as the global cache and the regions as the region table.
    ///
    /// Fails, before installing anything, when a region the code refers to (`#[cached(region = "…")]`, collected
    /// at link time) has no `[regions.NAME]` group. With `enabled = false` the global cache is the null backend
    /// (one warning names why) and every region is off.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_backends::ConfigError> {
    /// let config = cache_backends::Config::from_toml_str("[cache]\nenabled = false\n", "code")?;
    /// config.install().await?; // warns: caching is off
    /// # Ok(()) }
    /// ```
    pub async fn install(&self) -> Result<Cache, ConfigError> {
        let defined: Vec<String> = self.regions.keys().cloned().collect();
        let missing: Vec<String> = regions::referenced()
            .into_iter()
            .filter(|name| !self.regions.contains_key(*name))
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::MissingRegions {
                file: self.origin.clone(),
                missing,
                defined,
            });
        }
        let main = if self.cache.enabled {
            self.build(&self.cache.backend).await?
        } else {
            Cache::builder()
                .backend(NullBackend::new(format!(
                    "`enabled = false` in the [cache] settings of {}",
                    self.origin
                )))
                .build()
        };
        let mut table = HashMap::new();
        for (name, section) in &self.regions {
            let mut region = Region::new(
                self.cache.enabled && section.caching,
                section.cache_time.or(self.cache.expiration_time),
            );
            if let (true, Some(backend)) = (self.cache.enabled, &section.backend) {
                region = region.with_cache(self.build(backend).await?);
            }
            table.insert(name.clone(), region);
        }
        cache_core::set_global(main.clone());
        regions::install(table);
        Ok(main)
    }
}

impl CacheSection {
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "enabled" => self.enabled = parse_bool(value)?,
            "backend" => self.backend = value.to_owned(),
            "expiration_time" => self.expiration_time = Some(parse_duration(value)?),
            "key_prefix" => self.key_prefix = Some(value.to_owned()),
            "compress" => self.compress = parse_bool(value)?,
            "secret" => self.secret = Some(value.to_owned()),
            "hash_keys_over" => {
                self.hash_keys_over = Some(
                    value
                        .parse()
                        .map_err(|_| format!("expected a number of bytes, got {value:?}"))?,
                )
            }
            other => return Err(format!("unknown [cache] setting {other:?}")),
        }
        Ok(())
    }
}

impl RegionSection {
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "caching" => self.caching = parse_bool(value)?,
            "cache_time" => self.cache_time = Some(parse_duration(value)?),
            "backend" => self.backend = Some(value.to_owned()),
            other => return Err(format!("unknown region setting {other:?}")),
        }
        Ok(())
    }
}

fn yes() -> bool {
    true
}

fn memory() -> String {
    "memory".to_owned()
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

/// Integer seconds (`7200`) or a humantime duration (`"2h"`).
fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(value).map_err(|error| {
            format!("expected seconds or a duration such as \"10m\", got {value:?}: {error}")
        }),
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Secs(secs) => Ok(Some(Duration::from_secs(secs))),
        Raw::Text(text) => parse_duration(&text).map(Some).map_err(de::Error::custom),
    }
}

/// The dotted key at `span` in `text` (`cache.expiration_time`), from the nearest `[section]` header above it.
fn key_at(text: &str, span: Option<std::ops::Range<usize>>) -> Option<String> {
    let span = span?;
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?.trim();
    let key = line.split('=').next()?.trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    if key.is_empty() || key.starts_with('[') {
        return section;
    }
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_line_and_key() {
        let text = "[cache]\nbackend = \"memory\"\nexpiration_time = \"ten minutes\"\n";
        match Config::from_toml_str(text, "settings.toml") {
            Err(ConfigError::Invalid {
                file, line, key, ..
            }) => {
                assert_eq!((file.as_str(), line), ("settings.toml", 3));
                assert_eq!(key.as_deref(), Some("cache.expiration_time"));
            }
            other => panic!("{other:?}"),
        }
        let unknown =
            Config::from_toml_str("[regions.users]\ncachng = true\n", "s.toml").unwrap_err();
        assert!(
            unknown
                .to_string()
                .starts_with("s.toml:2: unknown field `cachng`"),
            "{unknown}"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = Config::from_toml_str(
            "[cache]\nenabled = true\n[regions.feature-name]\ncache_time = 60\n",
            "f",
        )
        .unwrap();
        config
            .apply_env([
                ("CACHE__ENABLED".to_owned(), "false".to_owned()),
                (
                    "CACHE__REGIONS__FEATURE_NAME__CACHE_TIME".to_owned(),
                    "2h".to_owned(),
                ),
                (
                    "CACHE__BACKEND_ARGUMENTS__SIZE".to_owned(),
                    "100".to_owned(),
                ),
                ("PATH".to_owned(), "/bin".to_owned()),
            ])
            .unwrap();
        assert!(!config.cache.enabled);
        assert_eq!(
            config.regions["feature-name"].cache_time,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(config.url_for("memory").unwrap(), "mem://?size=100");
        let bad = config
            .apply_env([("CACHE__ENABLED".to_owned(), "maybe".to_owned())])
            .unwrap_err();
        assert!(bad.to_string().contains("expected true or false"), "{bad}");
    }
}
