//! Decoding and authenticating signed txs (cosmos `TxRaw`, SIGN_MODE_DIRECT).

use bip32::secp256k1::ecdsa::signature::Verifier;
use bip32::secp256k1::ecdsa::{Signature, VerifyingKey};
use bip32::secp256k1::sha2::{Digest, Sha256};
use cosmos_sdk_proto::cosmos::crypto::secp256k1::PubKey;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{AuthInfo, SignDoc, TxBody, TxRaw};
use dydx_proto::dydxprotocol::clob::{MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder};
use prost::{Message, Name};

use crate::error::{ChainError, codes::sdk};

/// Bech32 prefix of dYdX accounts.
pub(crate) const BECH32_PREFIX: &str = "dydx";

const SECP256K1_PUBKEY_TYPE_URL: &str = "/cosmos.crypto.secp256k1.PubKey";

/// A message the simulator understands.
#[derive(Clone, Debug)]
pub(crate) enum TxMsg {
    Place(MsgPlaceOrder),
    Cancel(MsgCancelOrder),
    Batch(MsgBatchCancel),
    /// A message type the simulator does not implement (kept for the message log).
    Other(String),
}

/// A decoded tx with the bytes its signature covers.
#[derive(Debug)]
pub(crate) struct DecodedTx {
    pub raw: TxRaw,
    pub body: TxBody,
    pub msgs: Vec<TxMsg>,
    /// How many signer infos the auth info carries (clob txs need exactly one).
    pub signer_infos: usize,
    /// Public key from the first signer info, if the tx carries one.
    pub pubkey: Option<Vec<u8>>,
    /// Sequence (or timestamp nonce) the first signer committed to; 0 without signer info.
    pub sequence: u64,
}

impl DecodedTx {
    /// cosmos-sdk `x/auth/ante/basic.go`, `ValidateBasicDecorator` (the tx's own
    /// `ValidateBasic`, after every msg's): clob msgs have exactly one signer (the subaccount
    /// owner), so one signer info and one signature.
    pub(crate) fn validate_signer_count(&self) -> Result<(), ChainError> {
        if self.signer_infos != 1 || self.raw.signatures.len() != 1 {
            return Err(ChainError::sdk(
                sdk::UNAUTHORIZED,
                format!(
                    "invalid number of signer;  expected: 1, got {} signer infos and {} signatures",
                    self.signer_infos,
                    self.raw.signatures.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Upper-case hex SHA-256 of the tx bytes, like CometBFT's tx hash.
pub(crate) fn tx_hash(tx_bytes: &[u8]) -> String {
    Sha256::digest(tx_bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn decode_err(what: &str, err: impl std::fmt::Display) -> ChainError {
    ChainError::sdk(sdk::TX_DECODE, format!("{what}: {err}"))
}

/// Decodes `TxRaw` → body, auth info and messages. Mirrors baseapp's tx decoder: anything that
/// does not decode is `ErrTxDecode` (sdk/2).
pub(crate) fn decode(tx_bytes: &[u8]) -> Result<DecodedTx, ChainError> {
    let raw = TxRaw::decode(tx_bytes).map_err(|e| decode_err("invalid tx raw", e))?;
    let body =
        TxBody::decode(raw.body_bytes.as_slice()).map_err(|e| decode_err("invalid tx body", e))?;
    let auth_info = AuthInfo::decode(raw.auth_info_bytes.as_slice())
        .map_err(|e| decode_err("invalid auth info", e))?;
    if body.messages.is_empty() {
        return Err(ChainError::sdk(
            sdk::INVALID_REQUEST,
            "must contain at least one message",
        ));
    }
    let mut msgs = Vec::with_capacity(body.messages.len());
    for any in &body.messages {
        let msg = if any.type_url == MsgPlaceOrder::type_url() {
            TxMsg::Place(
                MsgPlaceOrder::decode(any.value.as_slice())
                    .map_err(|e| decode_err("invalid MsgPlaceOrder", e))?,
            )
        } else if any.type_url == MsgCancelOrder::type_url() {
            TxMsg::Cancel(
                MsgCancelOrder::decode(any.value.as_slice())
                    .map_err(|e| decode_err("invalid MsgCancelOrder", e))?,
            )
        } else if any.type_url == MsgBatchCancel::type_url() {
            TxMsg::Batch(
                MsgBatchCancel::decode(any.value.as_slice())
                    .map_err(|e| decode_err("invalid MsgBatchCancel", e))?,
            )
        } else {
            TxMsg::Other(any.type_url.clone())
        };
        msgs.push(msg);
    }
    let first = auth_info.signer_infos.first();
    let pubkey = match first.and_then(|info| info.public_key.as_ref()) {
        None => None,
        Some(any) if any.type_url == SECP256K1_PUBKEY_TYPE_URL => Some(
            PubKey::decode(any.value.as_slice())
                .map_err(|e| decode_err("invalid public key", e))?
                .key,
        ),
        Some(any) => {
            return Err(ChainError::sdk(
                sdk::INVALID_PUBKEY,
                format!("unsupported public key type {}", any.type_url),
            ));
        }
    };
    Ok(DecodedTx {
        sequence: first.map_or(0, |info| info.sequence),
        signer_infos: auth_info.signer_infos.len(),
        raw,
        body,
        msgs,
        pubkey,
    })
}

/// The bech32 `dydx1…` address of a compressed secp256k1 public key.
pub(crate) fn address_of(pubkey: &[u8]) -> Result<String, ChainError> {
    let key = VerifyingKey::from_sec1_bytes(pubkey)
        .map_err(|_| ChainError::sdk(sdk::INVALID_PUBKEY, "malformed secp256k1 public key"))?;
    cosmrs::crypto::PublicKey::from(key)
        .account_id(BECH32_PREFIX)
        .map(|id| id.to_string())
        .map_err(|e| ChainError::sdk(sdk::INVALID_PUBKEY, e))
}

/// Verifies the SIGN_MODE_DIRECT signature: secp256k1 over SHA-256 of the `SignDoc`
/// (body bytes, auth-info bytes, chain id, account number), exactly the bytes the client signed.
pub(crate) fn verify_direct(
    tx: &DecodedTx,
    pubkey: &[u8],
    chain_id: &str,
    account_number: u64,
) -> bool {
    let sign_doc = SignDoc {
        body_bytes: tx.raw.body_bytes.clone(),
        auth_info_bytes: tx.raw.auth_info_bytes.clone(),
        chain_id: chain_id.to_owned(),
        account_number,
    };
    let Ok(key) = VerifyingKey::from_sec1_bytes(pubkey) else {
        return false;
    };
    let Some(sig_bytes) = tx.raw.signatures.first() else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(sig_bytes) else {
        return false;
    };
    key.verify(&sign_doc.encode_to_vec(), &sig).is_ok()
}

/// Derives `(address, compressed public key)` the way `dydx::node::Wallet` does.
pub(crate) fn derive_from_mnemonic(phrase: &str, index: u32) -> Result<(String, Vec<u8>), String> {
    let mnemonic = bip32::Mnemonic::new(phrase, bip32::Language::English)
        .map_err(|e| format!("invalid mnemonic: {e}"))?;
    let seed = mnemonic.to_seed("");
    let path: bip32::DerivationPath = format!("m/44'/118'/0'/0/{index}")
        .parse()
        .map_err(|e| format!("invalid derivation path: {e}"))?;
    let key = cosmrs::crypto::secp256k1::SigningKey::derive_from_path(seed, &path)
        .map_err(|e| format!("key derivation failed: {e}"))?;
    let public = key.public_key();
    let address = public
        .account_id(BECH32_PREFIX)
        .map_err(|e| format!("address derivation failed: {e}"))?
        .to_string();
    Ok((address, public.to_bytes()))
}

/// Checks that `address` is a bech32 address with the `dydx` prefix.
pub(crate) fn validate_address(address: &str) -> Result<(), String> {
    let id: cosmrs::AccountId = address
        .parse()
        .map_err(|e| format!("invalid address {address}: {e}"))?;
    if id.prefix() != BECH32_PREFIX {
        return Err(format!(
            "address {address} does not have prefix {BECH32_PREFIX}"
        ));
    }
    Ok(())
}
