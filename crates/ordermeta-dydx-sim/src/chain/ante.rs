//! CheckTx and the ante handlers: decoding, every msg's `ValidateBasic`, the one-clob-msg
//! rule, the signer's account, its public key, replay protection (sequence or timestamp
//! nonce), the signature and the timeout height, then the rate limits and the clob rules.
//! State changes are kept only if the whole tx passes; a stateful tx that passes then waits in
//! the mempool for the next block.

use dydx_proto::dydxprotocol::subaccounts::SubaccountId;

use super::Chain;
use super::clob::{place_good_til, place_is_short_term};
use super::deliver::PendingTx;
use super::validate_basic::validate_basic;
use crate::error::{ChainError, codes};
use crate::tx::{self, DecodedTx, TxMsg};
use crate::types::{GoodTil, MsgKind, ReceivedMsg, order_flags};

/// Outcome of one broadcast, as put into the `TxResponse`.
#[derive(Debug)]
pub(crate) struct TxOutcome {
    pub hash: String,
    pub height: u32,
    pub result: Result<(), ChainError>,
}

impl Chain {
    /// Runs a broadcast tx through the ante handlers and the clob, like CheckTx on a full node.
    /// State changes (sequence, pubkey, book) are kept only if the whole tx succeeds.
    pub(crate) fn check_tx(&mut self, tx_bytes: &[u8]) -> TxOutcome {
        let hash = tx::tx_hash(tx_bytes);
        let height = self.height;
        // cosmos-sdk `x/auth/tx/decoder.go`, `DefaultTxDecoder`.
        let decoded = match tx::decode(tx_bytes) {
            Ok(decoded) => decoded,
            Err(err) => {
                self.log(ReceivedMsg {
                    index: 0,
                    height,
                    tx_hash: hash.clone(),
                    signer: None,
                    tx_sequence: None,
                    kind: MsgKind::Undecodable,
                    result: Err(err.clone()),
                    delivered: None,
                });
                return TxOutcome {
                    hash,
                    height,
                    result: Err(err),
                };
            }
        };
        let signer = signer_of(&decoded.msgs);
        let result = self.run_tx(&decoded);
        let log_index = self.messages.len() as u64;
        if result.is_ok()
            && let (Some(signer), [msg]) = (&signer, decoded.msgs.as_slice())
            && !is_short_term_tx(msg)
        {
            // Stateful: executed by the next block. Short-term messages never enter one.
            self.admit_to_mempool(PendingTx {
                hash: hash.clone(),
                bytes: tx_bytes.to_vec(),
                signer: signer.clone(),
                signed: decoded.sequence,
                msg: msg.clone(),
                log_index,
            });
        }
        for msg in &decoded.msgs {
            self.log(ReceivedMsg {
                index: 0,
                height,
                tx_hash: hash.clone(),
                signer: signer.clone(),
                tx_sequence: Some(decoded.sequence),
                kind: MsgKind::from_msg(msg),
                result: result.clone(),
                delivered: None,
            });
        }
        TxOutcome {
            hash,
            height,
            result,
        }
    }

    /// Validates a tx without signature checks or state changes (the `Simulate` RPC).
    pub(crate) fn simulate(&self, tx_bytes: &[u8]) -> Result<(), ChainError> {
        let decoded = tx::decode(tx_bytes)?;
        for msg in &decoded.msgs {
            validate_basic(msg)?;
        }
        Ok(())
    }

    /// baseapp's `validateBasicTxMsgs`, the ante chain of `app/ante.go`, `clobAnteHandle`,
    /// then the clob msg itself. The account's cache store (sequence, nonces, pubkey) is
    /// written only if everything passes.
    fn run_tx(&mut self, tx: &DecodedTx) -> Result<(), ChainError> {
        // cosmos-sdk `baseapp/baseapp.go`, `validateBasicTxMsgs`: before any ante handler.
        for msg in &tx.msgs {
            validate_basic(msg)?;
        }
        // `x/clob/ante/clob.go`, `ValidateMsgsInClobTx` / `IsShortTermClobMsgTx`: a clob msg
        // must be alone in its tx (the simulator allows no companion msg at all).
        let has_clob = tx.msgs.iter().any(|m| !matches!(m, TxMsg::Other(_)));
        if has_clob && tx.msgs.len() > 1 {
            return Err(ChainError::sdk(
                codes::sdk::INVALID_REQUEST,
                "a transaction containing MsgCancelOrder or MsgPlaceOrder may not contain more than one message",
            ));
        }
        let msg = &tx.msgs[0];
        if let TxMsg::Other(type_url) = msg {
            return Err(ChainError::sdk(
                codes::sdk::INVALID_REQUEST,
                format!("message type {type_url} is not supported by the simulator"),
            ));
        }
        tx.validate_signer_count()?;
        // cosmos-sdk `x/auth/ante/sigverify.go`, `GetSignerAcc`, on the CheckTx copy.
        let signer = signer_of(&tx.msgs)
            .ok_or_else(|| ChainError::sdk(codes::sdk::INVALID_ADDRESS, "message has no signer"))?;
        let mut account = self.check_accounts.get(&signer).cloned().ok_or_else(|| {
            ChainError::sdk(
                codes::sdk::UNKNOWN_ADDRESS,
                format!("account {signer} does not exist"),
            )
        })?;

        // cosmos-sdk `x/auth/ante/sigverify.go`, `SetPubKeyDecorator.AnteHandle`: a supplied
        // key must hash to the signer's address.
        let pubkey = match (&tx.pubkey, &account.pubkey) {
            (Some(given), _) => {
                if tx::address_of(given)? != signer {
                    return Err(ChainError::sdk(
                        codes::sdk::INVALID_PUBKEY,
                        format!(
                            "pubKey does not match signer address {signer} with signer index: 0"
                        ),
                    ));
                }
                given.clone()
            }
            (None, Some(stored)) => stored.clone(),
            (None, None) => {
                return Err(ChainError::sdk(
                    codes::sdk::INVALID_PUBKEY,
                    "pubkey on account is not set",
                ));
            }
        };

        // `app/ante/replay_protection.go`, `ReplayProtectionDecorator.AnteHandle`: only
        // stateful txs are bound to the sequence or a timestamp nonce (`app/ante/util.go`,
        // `ShouldSkipSequenceValidation`); CheckTx's block time is the latest block's.
        let short_term = is_short_term_tx(msg);
        if !short_term {
            let block_time_ms = u64::try_from(self.block_time.timestamp_millis()).unwrap_or(0);
            account.consume(tx.sequence, block_time_ms)?;
        }

        // `app/ante/sigverify.go`, `SigVerificationDecorator.AnteHandle`: the signature
        // commits to the chain id and the account number.
        if !tx::verify_direct(tx, &pubkey, &self.chain_id, account.number) {
            return Err(ChainError::sdk(
                codes::sdk::UNAUTHORIZED,
                format!(
                    "signature verification failed; please verify account number ({}) and chain-id ({})",
                    account.number, self.chain_id
                ),
            ));
        }

        // `x/clob/ante/clob.go`, `ClobDecorator.AnteHandle`: a short-term place may not
        // outlive its tx's timeout height.
        if let TxMsg::Place(place) = msg {
            let gtb = place_good_til(place).and_then(|g| match g {
                GoodTil::Block(b) => Some(b),
                GoodTil::BlockTime(_) => None,
            });
            if let Some(gtb) = gtb
                && short_term
                && tx.body.timeout_height > 0
                && tx.body.timeout_height < u64::from(gtb)
            {
                return Err(ChainError::sdk(
                    codes::sdk::INVALID_REQUEST,
                    "timeout height (if non-zero) may not be less than `goodTilBlock` for a short-term place order",
                ));
            }
        }

        self.rate_limit(msg, &signer)?;
        match msg {
            TxMsg::Place(place) => self.place_order(place)?,
            TxMsg::Cancel(cancel) => self.cancel_order(cancel)?,
            TxMsg::Batch(batch) => self.batch_cancel(batch)?,
            TxMsg::Other(_) => {}
        }

        // The ante handler's cache store is written only on success: sequence, nonces and
        // pubkey. The pubkey goes to committed state at once too (a simplification: on chain a
        // stateful tx's DeliverTx sets it; the `dydx` client sends it with every tx anyway).
        if account.pubkey.is_none() {
            account.pubkey = Some(pubkey.clone());
        }
        if let Some(committed) = self.accounts.get_mut(&signer)
            && committed.pubkey.is_none()
        {
            committed.pubkey = Some(pubkey);
        }
        self.check_accounts.insert(signer, account);
        Ok(())
    }
}

/// `app/ante/util.go`, `ShouldSkipSequenceValidation` / `x/clob/ante/clob.go`,
/// `IsShortTermClobMsgTx`.
pub(super) fn is_short_term_tx(msg: &TxMsg) -> bool {
    match msg {
        TxMsg::Place(place) => place_is_short_term(place),
        TxMsg::Cancel(cancel) => cancel
            .order_id
            .as_ref()
            .is_some_and(|id| id.order_flags == order_flags::SHORT_TERM),
        TxMsg::Batch(_) => true,
        TxMsg::Other(_) => false,
    }
}

/// The signer of a clob msg is the owner of its subaccount.
fn signer_of(msgs: &[TxMsg]) -> Option<String> {
    let subaccount: Option<&SubaccountId> = match msgs.first()? {
        TxMsg::Place(p) => p.order.as_ref()?.order_id.as_ref()?.subaccount_id.as_ref(),
        TxMsg::Cancel(c) => c.order_id.as_ref()?.subaccount_id.as_ref(),
        TxMsg::Batch(b) => b.subaccount_id.as_ref(),
        TxMsg::Other(_) => None,
    };
    subaccount
        .map(|s| s.owner.clone())
        .filter(|owner| !owner.is_empty())
}
