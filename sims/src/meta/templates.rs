//! The business account's message templates, as the send endpoint checks them. Meta sends a
//! template only in a language it exists in, while it is approved, and with as many body
//! parameters as its body has placeholders:
//!
//! - an unknown name or language, or a template not approved (pending, rejected): 132001;
//! - a paused template: 132015; a disabled one: 132016;
//! - a body parameter count other than the template's: 132000, with Meta's details text
//!   ("body: number of localizable_params (0) does not match the expected number of params (1)").
//!
//! The simulator holds one business account's templates: every number it serves shares them.

use std::collections::HashMap;

use axum::http::StatusCode;
use wabaflow_schemas::whatsapp::TemplateBody;

/// Where a template is in Meta's review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateStatus {
    Approved,
    Pending,
    Rejected,
    /// Paused for low quality: not sendable until it recovers.
    Paused,
    /// Paused too often: never sendable again.
    Disabled,
}

/// A message template in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// Meta's locale code, e.g. `en_US`.
    pub language: String,
    /// Placeholders in the body (`{{1}}`, `{{2}}`, … or named ones).
    pub body_params: usize,
    pub status: TemplateStatus,
}

impl Template {
    pub fn approved(name: &str, language: &str, body_params: usize) -> Self {
        Self {
            name: name.to_owned(),
            language: language.to_owned(),
            body_params,
            status: TemplateStatus::Approved,
        }
    }

    /// `NAME:LANGUAGE:BODY_PARAMS`, approved (the simulator command's `--template`).
    pub fn parse_approved(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(language), Some(params), None)
                if !name.is_empty() && !language.is_empty() =>
            {
                let params = params
                    .parse()
                    .map_err(|_| format!("{params:?} is not a number of body parameters"))?;
                Ok(Self::approved(name, language, params))
            }
            _ => Err(format!("{text:?} is not NAME:LANGUAGE:BODY_PARAMS")),
        }
    }
}

/// Templates by name and language.
#[derive(Debug, Default)]
pub(crate) struct Catalogue(HashMap<(String, String), Template>);

/// Why Meta refuses a template send: what the Graph error carries.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub code: u32,
    pub message: &'static str,
    pub details: String,
}

impl Catalogue {
    pub fn add(&mut self, template: Template) {
        self.0
            .insert((template.name.clone(), template.language.clone()), template);
    }

    /// `Ok` when Meta would send this template, else what it would answer.
    pub fn check(&self, sent: &TemplateBody) -> Result<(), Refusal> {
        let held = self.0.get(&(sent.name.clone(), sent.language.code.clone()));
        let template = match held.map(|t| (t, t.status)) {
            Some((template, TemplateStatus::Approved)) => template,
            None | Some((_, TemplateStatus::Pending | TemplateStatus::Rejected)) => {
                return Err(Refusal {
                    status: StatusCode::NOT_FOUND,
                    code: 132001,
                    message: "(#132001) Template name does not exist in the translation",
                    details: format!(
                        "template name ({}) does not exist in {}",
                        sent.name, sent.language.code
                    ),
                });
            }
            Some((_, TemplateStatus::Paused)) => {
                return Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    code: 132015,
                    message: "(#132015) Template is Paused",
                    details: "Template is paused due to low quality so it cannot be sent in a template message.".into(),
                });
            }
            Some((_, TemplateStatus::Disabled)) => {
                return Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    code: 132016,
                    message: "(#132016) Template is Disabled",
                    details: "Template has been paused too many times due to low quality and is now permanently disabled.".into(),
                });
            }
        };
        let given = body_params(sent);
        if given != template.body_params {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: 132000,
                message: "(#132000) Number of parameters does not match the expected number of params",
                details: format!(
                    "body: number of localizable_params ({given}) does not match the expected number of params ({})",
                    template.body_params
                ),
            });
        }
        Ok(())
    }
}

/// The parameters of the send's body component (none without one).
fn body_params(sent: &TemplateBody) -> usize {
    sent.components
        .iter()
        .filter(|c| c["type"] == "body")
        .map(|c| c["parameters"].as_array().map_or(0, Vec::len))
        .sum()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sent(name: &str, language: &str, params: &[&str]) -> TemplateBody {
        let parameters: Vec<_> = params
            .iter()
            .map(|p| json!({"type": "text", "text": p}))
            .collect();
        serde_json::from_value(json!({
            "name": name,
            "language": {"code": language},
            "components": [{"type": "body", "parameters": parameters}],
        }))
        .expect("a template body")
    }

    fn catalogue(templates: &[Template]) -> Catalogue {
        let mut catalogue = Catalogue::default();
        for template in templates {
            catalogue.add(template.clone());
        }
        catalogue
    }

    #[test]
    fn an_approved_template_with_its_parameters_is_sent() {
        let catalogue = catalogue(&[Template::approved("ticket_update", "en_US", 1)]);
        assert!(
            catalogue
                .check(&sent("ticket_update", "en_US", &["4711"]))
                .is_ok()
        );
    }

    #[test]
    fn a_name_or_language_meta_does_not_have_is_132001() {
        let catalogue = catalogue(&[Template::approved("ticket_update", "en_US", 1)]);
        for (name, language) in [("ticket_updat", "en_US"), ("ticket_update", "pt_BR")] {
            let refusal = catalogue
                .check(&sent(name, language, &["4711"]))
                .expect_err("refused");
            assert_eq!(
                (refusal.status, refusal.code),
                (StatusCode::NOT_FOUND, 132001)
            );
            assert_eq!(
                refusal.details,
                format!("template name ({name}) does not exist in {language}")
            );
        }
    }

    #[test]
    fn only_an_approved_template_is_sent() {
        let mut templates = Vec::new();
        for (name, status) in [
            ("pending", TemplateStatus::Pending),
            ("rejected", TemplateStatus::Rejected),
            ("paused", TemplateStatus::Paused),
            ("disabled", TemplateStatus::Disabled),
        ] {
            let mut template = Template::approved(name, "en_US", 0);
            template.status = status;
            templates.push(template);
        }
        let catalogue = catalogue(&templates);
        let code = |name| {
            catalogue
                .check(&sent(name, "en_US", &[]))
                .expect_err(name)
                .code
        };
        assert_eq!(
            [
                code("pending"),
                code("rejected"),
                code("paused"),
                code("disabled")
            ],
            [132001, 132001, 132015, 132016]
        );
    }

    #[test]
    fn a_parameter_count_other_than_the_body_has_is_132000_with_meta_details() {
        let catalogue = catalogue(&[Template::approved("renewal", "en_US", 1)]);
        let refusal = catalogue
            .check(&sent("renewal", "en_US", &[]))
            .expect_err("refused");
        assert_eq!(
            (refusal.status, refusal.code),
            (StatusCode::BAD_REQUEST, 132000)
        );
        assert_eq!(
            refusal.details,
            "body: number of localizable_params (0) does not match the expected number of params (1)"
        );
        let too_many = catalogue.check(&sent("renewal", "en_US", &["May", "June"]));
        assert_eq!(too_many.expect_err("refused").code, 132000);
    }

    #[test]
    fn the_command_line_form_names_its_parts() {
        assert_eq!(
            Template::parse_approved("renewal:en_US:2"),
            Ok(Template::approved("renewal", "en_US", 2))
        );
        assert!(Template::parse_approved("renewal:en_US").is_err());
        assert!(Template::parse_approved("renewal:en_US:two").is_err());
        assert!(Template::parse_approved(":en_US:1").is_err());
    }
}
