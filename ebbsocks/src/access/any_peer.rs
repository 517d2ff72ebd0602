//! The one question BIND asks before it knows an address: with DST.ADDR
//! `0.0.0.0` or `::` ("any peer"), would every peer be refused anyway? Then
//! the client is refused at once instead of waiting out its timeout, and a
//! `deny commands = ["bind"]` rule reads as it should.

use std::net::SocketAddr;

use super::{asker, AccessRules, Action, Denial, Subject};

impl AccessRules {
    /// Before a BIND waits for any peer: `Err` when every address a peer
    /// could come from would be refused by the same rule (or by the
    /// default). Peers of such a BIND are later checked with
    /// [`AccessRules::check_addr`] without a name, so rules that only name
    /// destinations never match them and are skipped here too.
    ///
    /// A linear scan: BIND requests are rare, and the answer is "allowed"
    /// at the first rule that could let some address through.
    pub fn check_any_addr(&self, who: &Subject<'_>, port: u16) -> Result<(), Denial> {
        let asker = asker(who, port);
        for rule in self.rules.iter().filter(|rule| rule.matches_asker(&asker)) {
            match (&rule.destinations, rule.action) {
                (None, Action::Deny) => {
                    return Err(Denial {
                        rule: rule.label.clone(),
                    })
                }
                (None, Action::Allow) => return Ok(()),
                // Allows some addresses: some peer may pass.
                (Some(destinations), Action::Allow) if !destinations.cidrs.is_empty() => {
                    return Ok(())
                }
                // Refuses some addresses (or names, which peers never
                // have): the rest fall through to later rules.
                (Some(_), _) => {}
            }
        }
        match self.default {
            Action::Deny => Err(Denial {
                rule: self.labels.default.clone(),
            }),
            // Some public address passes even with the private set denied.
            Action::Allow => Ok(()),
        }
    }

    /// [`AccessRules::check_addr`] for a BIND peer: the peer's address
    /// with the request's DST.PORT, so the `ports` of a rule mean the same
    /// for the request and for its peer (whose own port is ephemeral).
    pub fn check_bind_peer(
        &self,
        who: &Subject<'_>,
        name: Option<&str>,
        peer: SocketAddr,
        dst_port: u16,
    ) -> Result<(), Denial> {
        self.check_addr(who, name, SocketAddr::new(peer.ip(), dst_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessConfig;
    use crate::proto::Command;

    fn rules(toml_text: &str) -> AccessRules {
        let config: AccessConfig = toml::from_str(toml_text).expect("test TOML");
        AccessRules::compile(&config, &[], true, &[]).expect("compiles")
    }

    fn bind_from(client: &str) -> Subject<'static> {
        Subject {
            client: client.parse().expect("valid address"),
            user: None,
            command: Command::Bind,
        }
    }

    fn refused_by(rules: &AccessRules, client: &str) -> Option<String> {
        let denial = rules.check_any_addr(&bind_from(client), 0).err()?;
        Some(denial.rule.to_string())
    }

    #[test]
    fn a_rule_without_destinations_decides() {
        let deny =
            rules("[[rules]]\nname = \"no-bind\"\naction = \"deny\"\ncommands = [\"bind\"]\n");
        assert_eq!(refused_by(&deny, "192.0.2.1"), Some("no-bind".into()));
        let other_command = rules("[[rules]]\naction = \"deny\"\ncommands = [\"connect\"]\n");
        assert_eq!(refused_by(&other_command, "192.0.2.1"), None);
        let other_client = rules("[[rules]]\naction = \"deny\"\nclients = [\"198.51.100.0/24\"]\n");
        assert_eq!(refused_by(&other_client, "192.0.2.1"), None);
    }

    #[test]
    fn rules_with_destinations_refuse_only_some_peers() {
        let some = rules(
            "[[rules]]\naction = \"deny\"\ndestinations = [\"127.0.0.2/32\"]\n\
             [[rules]]\nname = \"last\"\naction = \"deny\"\n",
        );
        // The first rule leaves other addresses to the second, which
        // refuses everything.
        assert_eq!(refused_by(&some, "192.0.2.1"), Some("last".into()));
        let allow_range = rules(
            "default = \"deny\"\n[[rules]]\naction = \"allow\"\ndestinations = [\"10.0.0.0/8\"]\n",
        );
        assert_eq!(refused_by(&allow_range, "192.0.2.1"), None);
    }

    #[test]
    fn name_only_allows_never_admit_a_peer() {
        let names = rules(
            "default = \"deny\"\n[[rules]]\naction = \"allow\"\ndestinations = [\"*.example\"]\n",
        );
        assert_eq!(refused_by(&names, "192.0.2.1"), Some("default".into()));
        assert_eq!(refused_by(&AccessRules::allow_all(), "192.0.2.1"), None);
    }

    #[test]
    fn bind_peers_are_checked_with_the_requested_port() {
        let high =
            rules("[[rules]]\nname = \"high\"\naction = \"deny\"\nports = [\"1024-65535\"]\n");
        let who = bind_from("192.0.2.1");
        let peer: SocketAddr = "203.0.113.5:50000".parse().expect("valid");
        assert!(high.check_bind_peer(&who, None, peer, 21).is_ok());
        assert!(high.check_bind_peer(&who, None, peer, 2121).is_err());
    }
}
