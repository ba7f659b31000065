//! The page, embedded in the binary: every file of `tools/billingctl/console/` by its path.

/// One embedded file.
pub(crate) struct Asset {
    pub(crate) body: &'static [u8],
    pub(crate) content_type: &'static str,
}

const fn asset(body: &'static str, content_type: &'static str) -> Asset {
    Asset {
        body: body.as_bytes(),
        content_type,
    }
}

/// The file served at `path`, if any.
pub(crate) fn get(path: &str) -> Option<Asset> {
    Some(match path {
        "/" | "/index.html" => asset(include_str!("../../console/index.html"), "text/html; charset=utf-8"),
        "/app.js" => asset(include_str!("../../console/app.js"), "text/javascript; charset=utf-8"),
        "/i18n.js" => asset(include_str!("../../console/i18n.js"), "text/javascript; charset=utf-8"),
        "/chart.js" => asset(include_str!("../../console/chart.js"), "text/javascript; charset=utf-8"),
        "/style.css" => asset(include_str!("../../console/style.css"), "text/css; charset=utf-8"),
        "/favicon.svg" => asset(include_str!("../../console/favicon.svg"), "image/svg+xml"),
        _ => return None,
    })
}
