//! Errors. Each names the template version and file; none carries personal
//! data (tera's messages name variables and template positions, never
//! values, and the text message checks name sizes and characters only).

use crate::sms::SmsError;

/// A template version that cannot be loaded, or a lookup of one that does
/// not exist.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The version asked for is kept for the caller, not shown: it may have come from
    /// outside (an execution's input, an operator's request).
    #[error("the template version asked for is not known; known versions: {known}")]
    UnknownVersion { version: String, known: String },
    #[error("no template version to load")]
    NoVersions,
    #[error("template version {version:?} is given twice")]
    DuplicateVersion { version: String },
    #[error(
        "template version {version:?}: a version name is 1-32 characters of a-z, 0-9, '.', '_' or '-' \
         (it becomes part of S3 keys)"
    )]
    BadVersionName { version: String },
    #[error("template {version}/{file} does not parse: {message}")]
    Parse {
        version: String,
        file: &'static str,
        message: String,
    },
    #[error(
        "template {version}/{file} uses {} that the view model does not provide (it provides: {})",
        names_list(.names),
        .known.join(", ")
    )]
    UnknownVariables {
        version: String,
        file: &'static str,
        names: Vec<String>,
        known: Vec<String>,
    },
    #[error("template {version}/meta.json is malformed: {message}")]
    Meta { version: String, message: String },
    #[error("template {version}/{file} must not use invoice_url: the link is only for the text message")]
    LinkOutsideSms { version: String, file: &'static str },
    #[error("template version {version}: rendering the {sample} sample failed: {source}")]
    Sample {
        version: String,
        sample: String,
        #[source]
        source: RenderError,
    },
    #[error(transparent)]
    Fixture(#[from] crate::samples::SampleError),
}

fn names_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    if names.len() == 1 {
        format!("the variable {}", quoted.join(", "))
    } else {
        format!("the variables {}", quoted.join(", "))
    }
}

/// One invoice that cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Tera failed: an undefined variable or field, a type error, ...
    #[error("template {version}/{file}: {message}")]
    Template {
        version: String,
        file: &'static str,
        message: String,
    },
    #[error("template {version}/sms.txt: {source}")]
    Sms {
        version: String,
        #[source]
        source: SmsError,
    },
    #[error("template {version}/subject.txt: {reason}")]
    Subject { version: String, reason: &'static str },
}
