//! Request parameters: the query string and, for POST, a form body (`formPost`), merged and
//! kept in order because several are repeated (`id`, `songIdToAdd`, `time`).

use super::error::SubsonicError;

/// The parameters of one call.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// From `application/x-www-form-urlencoded` text (a query string or a form body).
    pub fn parse(parts: &[&[u8]]) -> Params {
        let mut all = Vec::new();
        for p in parts {
            all.extend(
                url::form_urlencoded::parse(p).map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
        }
        Params(all)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, or error 10.
    pub fn require(&self, name: &'static str) -> Result<&str, SubsonicError> {
        self.get(name).ok_or(SubsonicError::Missing(name))
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name` as a number, `default` when absent; error 0 when present and not a number.
    pub fn num(&self, name: &'static str, default: u32) -> Result<u32, SubsonicError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| SubsonicError::BadParam {
                name,
                why: format!("{v:?} is not a whole number"),
            }),
        }
    }

    /// `name` as an optional number.
    pub fn opt_num(&self, name: &'static str) -> Result<Option<u32>, SubsonicError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(_) => self.num(name, 0).map(Some),
        }
    }

    /// `name` as a boolean (`true`/`false`), `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.get(name) {
            Some(v) => v.eq_ignore_ascii_case("true") || v == "1",
            None => default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_form_merge_in_order() {
        let p = Params::parse(&[b"u=al%20ice&id=1", b"id=2&size=5&x="]);
        assert_eq!(p.get("u"), Some("al ice"));
        assert_eq!(p.all("id"), vec!["1", "2"]);
        assert_eq!(p.num("size", 10).unwrap(), 5);
        assert_eq!(p.num("offset", 0).unwrap(), 0);
        assert!(p.num("u", 0).is_err());
        assert!(matches!(p.require("c"), Err(SubsonicError::Missing("c"))));
    }
}
