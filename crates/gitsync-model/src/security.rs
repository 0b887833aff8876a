//! The rules that keep tenants apart and the server safe from what it is sent: which AWS accounts
//! a tenant may deploy into, which Git endpoints a host may name, which stacks gitsync owns, and
//! how long lists drawn from a repository are capped.

use crate::tenant::is_account_id;

/// What the operator allows one tenant (`gitsync accounts set`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    pub account_id: String,
    /// The AWS accounts the tenant's sync roles may live in.
    pub deploy_accounts: Vec<String>,
    /// A trusted tenant may deploy with the server's own credentials (unless the server assumes
    /// sync roles for everyone); an untrusted tenant's role is always assumed.
    pub trusted: bool,
}

impl AccountPolicy {
    /// What a tenant the operator said nothing about may do: deploy into its own account only,
    /// always through its role.
    pub fn default_for(account_id: &str) -> AccountPolicy {
        AccountPolicy {
            account_id: account_id.to_string(),
            deploy_accounts: vec![account_id.to_string()],
            trusted: false,
        }
    }

    /// Whether a sync role may be used by this tenant; the error names the rule and the account.
    pub fn check_role(&self, role_arn: &str) -> Result<(), String> {
        let account = role_account(role_arn).ok_or_else(|| {
            format!("RoleArn {role_arn} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        })?;
        if self.deploy_accounts.iter().any(|a| a == account) {
            Ok(())
        } else {
            Err(format!(
                "RoleArn {role_arn} is in AWS account {account}, and account {} may deploy only into {}; \
                 the operator allows more with `gitsync accounts set {} --deploy-account {account}`",
                self.account_id,
                self.deploy_accounts.join(", "),
                self.account_id
            ))
        }
    }
}

/// The account id of an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/NAME`).
pub fn role_account(role_arn: &str) -> Option<&str> {
    let mut parts = role_arn.splitn(6, ':');
    let (arn, _partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn == "arn"
        && service == "iam"
        && region.is_empty()
        && is_account_id(account)
        && resource.starts_with("role/")
        && resource.len() > "role/".len())
    .then_some(account)
}

/// The tags that mark a stack as gitsync's, and whose.
pub const OWNER_ACCOUNT_TAG: &str = "gitsync:account";
pub const OWNER_CONFIGURATION_TAG: &str = "gitsync:sync-configuration";
/// CloudFormation allows 50 tags on a stack; gitsync keeps two of them.
pub const MAX_USER_STACK_TAGS: usize = 48;

/// Whether a host name may be used: it becomes part of the host's ARN (`host/{name}-{suffix}`),
/// so it holds no `/`, `:`, whitespace or control characters (the model's length rule, 1 to 64,
/// is checked with the request).
pub fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == ':')
    {
        return Err(format!(
            "Name '{}' must not be empty or hold '/', ':', spaces or control characters (it becomes part of the host's ARN)",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Whether a host endpoint may be used. `file://` reads the server's own disk, so it is for
/// single-user installs that start the server with `--allow-file-remotes`.
pub fn check_host_endpoint(endpoint: &str, allow_file: bool) -> Result<(), String> {
    if endpoint
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "ProviderEndpoint '{}' must not contain spaces or control characters",
            endpoint.escape_debug()
        ));
    }
    if let Some(path) = endpoint.strip_prefix("file://") {
        if !allow_file {
            return Err(format!(
                "ProviderEndpoint {endpoint}: file:// endpoints read the server's own disk and are refused unless the operator starts gitsync with --allow-file-remotes"
            ));
        }
        if !path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(format!(
                "ProviderEndpoint {endpoint}: a file:// endpoint needs an absolute path without '..'"
            ));
        }
        return Ok(());
    }
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return Err(format!(
            "ProviderEndpoint {endpoint} must be a URL starting with https://, http:// or ssh://"
        ));
    };
    if !["https", "http", "ssh"].contains(&scheme) {
        return Err(format!(
            "ProviderEndpoint {endpoint}: scheme {scheme}:// is not allowed; use https://, http:// or ssh://"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if endpoint.contains(['?', '#']) {
        return Err(format!(
            "ProviderEndpoint {endpoint} must not have a query or a fragment"
        ));
    }
    let host_port = match authority.rsplit_once('@') {
        Some((user, host)) => {
            // ssh needs a user name (git@host); a password in a URL would be stored in clear.
            if scheme != "ssh" || user.contains(':') || user.is_empty() {
                return Err(format!(
                    "ProviderEndpoint {endpoint} must not carry credentials; give a token with `gitsync connections activate` instead"
                ));
            }
            host
        }
        None => authority,
    };
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let valid_host = !host.is_empty()
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b));
    if !valid_host {
        return Err(format!(
            "ProviderEndpoint {endpoint} must name a host (https://git.example.com)"
        ));
    }
    if let Some(port) = host_port.strip_prefix('[').map_or_else(
        || host_port.split_once(':').map(|(_, p)| p),
        |v6| v6.split_once("]:").map(|(_, p)| p),
    ) && port.parse::<u16>().is_err()
    {
        return Err(format!(
            "ProviderEndpoint {endpoint}: port '{port}' is not a port number"
        ));
    }
    Ok(())
}

/// Caps a list of events (or problems) at `max`: the first `max - 1` are kept and the last says
/// how many were left out.
pub fn cap_list<T>(items: &mut Vec<T>, max: usize, summary: impl FnOnce(usize) -> T) {
    let max = max.max(1);
    if items.len() > max {
        let left_out = items.len() - (max - 1);
        items.truncate(max - 1);
        items.push(summary(left_out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_must_live_in_an_allowed_account() {
        let policy = AccountPolicy::default_for("111111111111");
        assert!(
            policy
                .check_role("arn:aws:iam::111111111111:role/deployer")
                .is_ok()
        );
        let refused = policy
            .check_role("arn:aws:iam::000000000000:role/deployer")
            .unwrap_err();
        assert!(refused.contains("000000000000") && refused.contains("--deploy-account"));
        assert!(policy.check_role("arn:aws:s3:::bucket").is_err());
        assert!(
            policy
                .check_role("arn:aws:iam::111111111111:user/x")
                .is_err()
        );
        assert!(
            policy
                .check_role("arn:aws:iam::111111111111:role/")
                .is_err()
        );
        assert_eq!(
            role_account("arn:aws-cn:iam::222222222222:role/a/b"),
            Some("222222222222")
        );
    }

    #[test]
    fn host_endpoints_are_checked() {
        for ok in [
            "https://git.example.com",
            "https://git.example.com:8443/base/",
            "http://127.0.0.1:3000",
            "ssh://git@git.example.com:2222",
            "https://[::1]:8080",
        ] {
            assert_eq!(check_host_endpoint(ok, false), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://git.example.com",
            "https://",
            "https://user:pass@git.example.com",
            "https://token@git.example.com",
            "git.example.com",
            "https://git.example.com/a b",
            "https://git.example.com\n",
            "https://git.example.com:99999",
            "https://git.example.com/?x=1",
            "ext::sh -c x",
            "https://-oProxyCommand=x",
        ] {
            assert!(check_host_endpoint(bad, true).is_err(), "{bad}");
        }
        let refused = check_host_endpoint("file:///srv/git", false).unwrap_err();
        assert!(refused.contains("--allow-file-remotes"), "{refused}");
        assert_eq!(check_host_endpoint("file:///srv/git", true), Ok(()));
        assert!(check_host_endpoint("file://srv/git", true).is_err());
        assert!(check_host_endpoint("file:///srv/../etc", true).is_err());
    }

    #[test]
    fn host_names_fit_in_an_arn() {
        assert!(check_host_name("ghe-prod.eu_1").is_ok());
        for bad in ["", "a/b", "a:b", "a b", "a\nb", "\u{0}"] {
            assert!(check_host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_are_capped_with_a_summary() {
        let mut items: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        cap_list(&mut items, 4, |n| format!("{n} more left out"));
        assert_eq!(items, ["0", "1", "2", "7 more left out"]);
        let mut short = vec![1, 2];
        cap_list(&mut short, 4, |_| 0);
        assert_eq!(short, [1, 2]);
    }
}
