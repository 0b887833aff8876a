//! Building HTML where every piece of data is escaped: markup comes only from `&'static str`,
//! everything else goes through [`Html::text`] (or [`Html::link`], whose query is encoded).

/// A page being written.
#[derive(Default)]
pub struct Html(String);

impl Html {
    /// Markup written in this program (never data: it is `'static`).
    pub fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Data, escaped for text and for quoted attribute values alike.
    pub fn text(&mut self, data: &str) -> &mut Self {
        for c in data.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        self
    }

    /// A number as text.
    pub fn num(&mut self, n: impl std::fmt::Display) -> &mut Self {
        self.0.push_str(&n.to_string());
        self
    }

    /// `path?query` with every pair form-encoded, escaped for an attribute.
    pub fn url(&mut self, path: &'static str, query: &[(&str, &str)]) -> &mut Self {
        let url = url(path, query);
        self.text(&url)
    }

    /// `<a href="url">label</a>`.
    pub fn link(&mut self, path: &'static str, query: &[(&str, &str)], label: &str) -> &mut Self {
        self.raw("<a href=\"")
            .url(path, query)
            .raw("\">")
            .text(label)
            .raw("</a>")
    }

    /// A hidden form field.
    pub fn hidden(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.raw("<input type=\"hidden\" name=\"")
            .raw(name)
            .raw("\" value=\"")
            .text(value)
            .raw("\">")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// `path?query`, the pairs with an empty value left out.
pub fn url(path: &str, query: &[(&str, &str)]) -> String {
    let mut out = String::from(path);
    let mut first = true;
    for (k, v) in query.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(if first { '?' } else { '&' });
        first = false;
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_become_markup() {
        let mut h = Html::default();
        h.raw("<td title=\"")
            .text("\"><script>alert('x')</script>&")
            .raw("\">");
        assert_eq!(
            h.into_string(),
            "<td title=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\">"
        );
    }

    #[test]
    fn urls_encode_their_query_and_leave_out_empty_values() {
        assert_eq!(
            url(
                "/ui/target",
                &[
                    ("key", "svc/inst a&b"),
                    ("region", ""),
                    ("type", "SERVICE_SYNC")
                ]
            ),
            "/ui/target?key=svc%2Finst+a%26b&type=SERVICE_SYNC"
        );
        let mut h = Html::default();
        h.link("/ui/", &[("q", "<x>")], "<x>");
        assert_eq!(h.into_string(), "<a href=\"/ui/?q=%3Cx%3E\">&lt;x&gt;</a>");
    }
}
