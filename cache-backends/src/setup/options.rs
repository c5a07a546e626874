//! Query options of cache URLs: each is taken once by whoever understands it; what is left is an error.

use std::time::Duration;

use super::SetupError;

/// The query pairs of a URL not taken yet.
pub(crate) type Options = Vec<(String, String)>;

pub(crate) fn take_string(options: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let index = options.iter().position(|(k, _)| k == name)?;
    Some(options.remove(index).1)
}

/// A number option that must lie in `min..=max`.
pub(crate) fn take_bounded(
    options: &mut Vec<(String, String)>,
    name: &str,
    min: usize,
    max: usize,
) -> Result<Option<usize>, SetupError> {
    let value = take_parsed::<usize>(options, name)?;
    match value {
        Some(n) if !(min..=max).contains(&n) => Err(SetupError::InvalidOption {
            name: name.to_owned(),
            value: n.to_string(),
            reason: format!("must be between {min} and {max}"),
        }),
        _ => Ok(value),
    }
}

pub(crate) fn take_parsed<T>(
    options: &mut Vec<(String, String)>,
    name: &str,
) -> Result<Option<T>, SetupError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    take_string(options, name)
        .map(|value| {
            value.parse::<T>().map_err(|e| SetupError::InvalidOption {
                name: name.to_owned(),
                reason: e.to_string(),
                value,
            })
        })
        .transpose()
}

pub(crate) fn take_bool(
    options: &mut Vec<(String, String)>,
    name: &str,
) -> Result<Option<bool>, SetupError> {
    take_string(options, name)
        .map(|value| match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(SetupError::InvalidOption {
                name: name.to_owned(),
                value,
                reason: "expected true or false".into(),
            }),
        })
        .transpose()
}

pub(crate) fn take_duration(
    options: &mut Vec<(String, String)>,
    name: &str,
) -> Result<Option<Duration>, SetupError> {
    take_string(options, name)
        .map(|value| {
            humantime::parse_duration(&value).map_err(|e| SetupError::InvalidOption {
                name: name.to_owned(),
                reason: format!("{e} (expected a duration like 500ms or 2s)"),
                value,
            })
        })
        .transpose()
}
