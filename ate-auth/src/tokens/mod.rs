//! Tokens: the access tokens ATE issues (JWTs signed with keys kept in the database, see
//! [`access`]) and the refresh tokens that renew them (one family per login session, see
//! [`refresh`]).

pub mod access;
pub mod refresh;

pub use access::{
    AccessToken, SigningKeyInfo, TokenConfig, TokenService, VERIFIED_TOKEN_CACHE_CAPACITY,
};
pub use refresh::{REFRESH_TOKEN_PREFIX, RefreshToken, Refreshed};
