//! From `[[access.rules]]` as written to compiled rules, refusing what is
//! surely a mistake with the key (`access.rules[3].destinations`) and what
//! is wrong with it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use super::cidr::Cidr;
use super::names::NamePattern;
use super::ports::PortSet;
use super::rule::{AskerMatchers, CommandSet, Destinations, Rule};
use super::{AccessConfig, AccessError, RuleConfig};

/// Labels the rule set uses itself; a rule may not take them.
pub const BUILT_IN_LABELS: [&str; 3] = ["private_destinations", "own_address", "default"];

pub fn compile_rules(
    config: &AccessConfig,
    known_users: &[&str],
) -> Result<Vec<Rule>, AccessError> {
    if config.max_sessions_per_user > 0 && known_users.is_empty() {
        return Err(AccessError {
            key: "access.max_sessions_per_user".into(),
            message: "has no effect without users in [auth]; set it to 0 or add users".into(),
        });
    }
    let mut names_seen = HashSet::new();
    let mut rules = Vec::with_capacity(config.rules.len());
    for (at, rule) in config.rules.iter().enumerate() {
        let key = |field: &str| format!("access.rules[{at}].{field}");
        if let Some(name) = &rule.name {
            check_rule_name(name).map_err(|message| AccessError {
                key: key("name"),
                message,
            })?;
            if !names_seen.insert(name.as_str()) {
                return Err(AccessError {
                    key: key("name"),
                    message: format!(
                        "{name:?} is already the name of an earlier rule; \
                         names label counters, so each must be unique"
                    ),
                });
            }
        }
        rules.push(compile_rule(rule, at, known_users, key)?);
    }
    Ok(rules)
}

fn check_rule_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty; leave it out to label the rule by its index".into());
    }
    if name.starts_with('#') || BUILT_IN_LABELS.contains(&name) {
        return Err(format!(
            "{name:?} is reserved: built-in labels are {BUILT_IN_LABELS:?}, and `#<index>` \
             labels rules without a name"
        ));
    }
    Ok(())
}

fn compile_rule(
    rule: &RuleConfig,
    at: usize,
    known_users: &[&str],
    key: impl Fn(&str) -> String,
) -> Result<Rule, AccessError> {
    let field = |field: &'static str, list: &Option<Vec<String>>| -> Result<(), AccessError> {
        match list {
            Some(list) if list.is_empty() => Err(AccessError {
                key: key(field),
                message: format!(
                    "an empty list matches nothing, so the rule could never apply; \
                     leave `{field}` out to match any {}",
                    match field {
                        "users" => "user",
                        "clients" => "client",
                        "destinations" => "destination",
                        "ports" => "port",
                        _ => "command",
                    }
                ),
            }),
            _ => Ok(()),
        }
    };
    field("users", &rule.users)?;
    field("clients", &rule.clients)?;
    field("destinations", &rule.destinations)?;
    field("ports", &rule.ports)?;
    field("commands", &rule.commands)?;
    let error = |field: &str| {
        let key = key(field);
        move |message: String| AccessError { key, message }
    };

    let users = rule
        .users
        .as_ref()
        .map(|users| compile_users(users, known_users))
        .transpose()
        .map_err(error("users"))?;
    let clients = rule
        .clients
        .as_ref()
        .map(|clients| {
            clients
                .iter()
                .map(|c| Cidr::parse(c))
                .collect::<Result<Box<[_]>, _>>()
        })
        .transpose()
        .map_err(error("clients"))?;
    let destinations = rule
        .destinations
        .as_ref()
        .map(|entries| compile_destinations(entries))
        .transpose()
        .map_err(error("destinations"))?;
    let ports = rule
        .ports
        .as_ref()
        .map(|ports| PortSet::parse(ports))
        .transpose()
        .map_err(error("ports"))?;
    let commands = rule
        .commands
        .as_ref()
        .map(|words| compile_commands(words))
        .transpose()
        .map_err(error("commands"))?;
    let label: Arc<str> = match &rule.name {
        Some(name) => name.as_str().into(),
        None => format!("#{at}").into(),
    };
    Ok(Rule {
        label,
        action: rule.action,
        asker: AskerMatchers {
            users,
            clients,
            ports,
            commands,
        },
        destinations,
    })
}

fn compile_users(users: &[String], known_users: &[&str]) -> Result<Box<[Box<str>]>, String> {
    for user in users {
        if !known_users.contains(&user.as_str()) {
            return Err(if known_users.is_empty() {
                format!("unknown user {user:?}: [auth] has no users")
            } else {
                format!("unknown user {user:?}: not among the users of [auth]")
            });
        }
    }
    Ok(users.iter().map(|user| user.as_str().into()).collect())
}

/// An entry with a `/` or that parses as an address is a range (a bare
/// address is a single host); anything else is a name.
fn compile_destinations(entries: &[String]) -> Result<Destinations, String> {
    let mut destinations = Destinations::default();
    for entry in entries {
        if entry.contains('/') || entry.parse::<IpAddr>().is_ok() {
            destinations.cidrs.push(Cidr::parse(entry)?);
        } else {
            destinations.names.push(NamePattern::parse(entry)?);
        }
    }
    Ok(destinations)
}

fn compile_commands(words: &[String]) -> Result<CommandSet, String> {
    let mut set = CommandSet::EMPTY;
    for word in words {
        let command = CommandSet::word(word).ok_or_else(|| {
            format!("unknown command {word:?}; the commands are \"connect\", \"bind\" and \"udp\"")
        })?;
        set = set.with(command);
    }
    Ok(set)
}
