//! One credential of a live source: the Instagram business account calls are made as, its
//! token, and what an exchange of that token needs.
//!
//! This module only holds them: it must not send anything (that is `http`) nor choose between
//! credentials (that is [`super::source`]). It depends on [`super::token`] alone, so every other
//! part of `graph` can name a credential without depending on where calls come from.

use super::token::{AccessToken, AppSecret};

/// Credentials of a live source: one Instagram business account and its token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The Instagram business account the calls are made as.
    pub ig_user_id: String,
    pub token: AccessToken,
    /// When set, every call carries `appsecret_proof`.
    pub app_secret: Option<AppSecret>,
    /// The Meta app's id, set only for a token read from the token secret: with the app secret
    /// it lets the token be exchanged for a fresh one (`Session::exchange_token`), which is
    /// then written back to that secret. A token from `IG_ACCESS_TOKEN` has nowhere to be
    /// written, so it is never exchanged.
    pub app_id: Option<String>,
}

impl Credentials {
    /// True when the token can be exchanged for a fresh one: the app id and app secret are known.
    pub fn can_exchange(&self) -> bool {
        self.app_id.is_some() && self.app_secret.is_some()
    }
}
