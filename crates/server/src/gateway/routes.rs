//! The gateway's route table: method and path pattern → public, or the scopes a token needs. Patterns are
//! literal segments, `{name}` (one segment) and a final `{*name}` (the rest). Paths that an upstream might read
//! differently from the gateway (dot segments, empty segments, encoded `/`, `.` or `\`) are refused before
//! matching, so a route cannot be bypassed by spelling its path another way.

use axum::http::Method;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

/// A path pattern such as `/manage/orders/{id}` or `/static/{*path}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Segment>);

impl Pattern {
    /// Parses a pattern; `{*rest}` may only come last.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("path: must start with /".into());
        };
        if text == "/" {
            return Ok(Pattern(Vec::new()));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let mut out = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let segment = match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if name.starts_with('*') => {
                    if i + 1 != parts.len() {
                        return Err("path: {*rest} may only be the last segment".into());
                    }
                    Segment::Rest
                }
                Some(name) if !name.is_empty() && !name.contains(['{', '}']) => Segment::One,
                Some(_) => return Err(format!("path: bad parameter segment {p:?}")),
                None if p.is_empty() || p.contains(['{', '}']) || *p == "." || *p == ".." => {
                    return Err(format!("path: bad segment {p:?}"));
                }
                None => Segment::Literal((*p).to_owned()),
            };
            out.push(segment);
        }
        Ok(Pattern(out))
    }

    /// Whether a (checked) request path matches.
    pub fn matches(&self, path: &str) -> bool {
        let segments: Vec<&str> = if path == "/" {
            Vec::new()
        } else {
            path.trim_start_matches('/').split('/').collect()
        };
        let mut i = 0;
        for s in &self.0 {
            match s {
                Segment::Rest => return i < segments.len(),
                Segment::One if i < segments.len() && !segments[i].is_empty() => {}
                Segment::Literal(l) if segments.get(i) == Some(&l.as_str()) => {}
                _ => return false,
            }
            i += 1;
        }
        i == segments.len()
    }
}

/// One `[[route]]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path pattern.
    pub pattern: Pattern,
    /// Methods it covers; every method when empty.
    pub methods: Vec<Method>,
    /// Scopes a token must have (all of them).
    pub scopes: Vec<String>,
    /// No token needed.
    pub public: bool,
    /// Check tokens by introspection (revocation honoured at once) instead of locally.
    pub introspect: bool,
}

/// What the table says about a request.
#[derive(Debug)]
pub enum Found<'r> {
    /// The first route that matches, and its index.
    Route(usize, &'r Route),
    /// The path matches routes, but not for this method: 405 with these.
    MethodNotAllowed(Vec<Method>),
    /// No route: refused (the gateway forwards nothing it was not told to).
    NotFound,
}

/// Refuses a path an upstream could resolve to another route: dot or empty segments (with matrix parameters too:
/// `..;x`, which Java servlet containers read as `..`), encoded separators or dots, backslashes.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    let lower = path.to_ascii_lowercase();
    let encoded = ["%2f", "%2e", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e));
    let dotted = path.split('/').skip(1).any(|s| {
        let name = s.split(';').next().unwrap_or(s);
        name == "." || name == ".."
    });
    if !path.starts_with('/') || encoded || dotted || path.contains('\\') || path.contains("//") {
        return Err("the path has dot or empty segments or encoded separators");
    }
    Ok(())
}

/// Finds the route for a request.
pub fn find<'r>(routes: &'r [Route], method: &Method, path: &str) -> Found<'r> {
    let mut allowed = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        if !r.pattern.matches(path) {
            continue;
        }
        if r.methods.is_empty() || r.methods.contains(method) {
            return Found::Route(i, r);
        }
        for m in &r.methods {
            if !allowed.contains(m) {
                allowed.push(m.clone());
            }
        }
    }
    if allowed.is_empty() {
        Found::NotFound
    } else {
        Found::MethodNotAllowed(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, methods: &[Method]) -> Route {
        Route {
            pattern: Pattern::parse(path).unwrap(),
            methods: methods.to_vec(),
            scopes: vec![],
            public: false,
            introspect: false,
        }
    }

    #[test]
    fn patterns() {
        let p = Pattern::parse("/manage/orders/{id}").unwrap();
        assert!(p.matches("/manage/orders/42"));
        assert!(!p.matches("/manage/orders"));
        assert!(!p.matches("/manage/orders/"));
        assert!(!p.matches("/manage/orders/42/items"));
        let rest = Pattern::parse("/static/{*path}").unwrap();
        assert!(rest.matches("/static/a/b.css"));
        assert!(!rest.matches("/static"));
        assert!(Pattern::parse("/").unwrap().matches("/"));
        for bad in ["x", "/a//b", "/{*r}/x", "/{}", "/a/../b", "/a{b}"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_that_could_be_read_otherwise_are_refused() {
        for bad in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/a%2Fb",
            "/a//b",
            "/a/./b",
            "/a\\b",
            "/public/..;/admin",
            "/public/..;jsessionid=x/admin",
            "/a/.;x/b",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert!(check_path("/manage/orders/0f05ebc2-89ec").is_ok());
        assert!(check_path("/a/b%20c").is_ok());
        assert!(check_path("/a;v=1/b").is_ok());
    }

    #[test]
    fn first_match_and_405() {
        let routes = [
            route("/orders/{id}", &[Method::GET]),
            route("/orders/{id}", &[Method::DELETE]),
            route("/{*any}", &[Method::POST, Method::GET]),
        ];
        assert!(matches!(
            find(&routes, &Method::GET, "/orders/1"),
            Found::Route(0, _)
        ));
        assert!(matches!(
            find(&routes, &Method::DELETE, "/orders/1"),
            Found::Route(1, _)
        ));
        match find(&routes, &Method::PUT, "/orders/1") {
            Found::MethodNotAllowed(m) => {
                assert_eq!(m, vec![Method::GET, Method::DELETE, Method::POST])
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            find(&routes[..2], &Method::GET, "/nope"),
            Found::NotFound
        ));
    }
}
