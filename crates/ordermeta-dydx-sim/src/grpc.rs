//! The node's gRPC services: `cosmos.auth.v1beta1.Query`, `cosmos.base.tendermint.v1beta1.Service`
//! and `cosmos.tx.v1beta1.Service`, as far as `dydx::node::NodeClient` uses them.
//!
//! A thin translation layer: every call locks the `chain` once and maps its
//! answer to protobuf. It reads the chain and nothing else (no other server).

use chrono::{DateTime, Utc};
use cosmos_sdk_proto::cosmos::auth::v1beta1 as auth;
use cosmos_sdk_proto::cosmos::auth::v1beta1::query_server::Query;
use cosmos_sdk_proto::cosmos::base::abci::v1beta1::{GasInfo, Result as AbciResult, TxResponse};
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1 as tm;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::service_server::Service as TmService;
use cosmos_sdk_proto::cosmos::crypto::secp256k1::PubKey;
use cosmos_sdk_proto::cosmos::tx::v1beta1 as txpb;
use cosmos_sdk_proto::cosmos::tx::v1beta1::service_server::Service as TxService;
use cosmos_sdk_proto::{Any, Timestamp};
use prost::{Message, Name};
use tonic::{Request, Response, Status};

use crate::chain::SharedChain;

/// Gas reported for every tx: clob txs run with free infinite gas on chain, so any value works.
const SIMULATED_GAS: u64 = 100_000;

/// The three gRPC services over one chain.
#[derive(Clone, Debug)]
pub(crate) struct GrpcNode {
    pub chain: SharedChain,
}

fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn sdk_block(chain_id: &str, height: u32, time: DateTime<Utc>) -> tm::Block {
    tm::Block {
        header: Some(tm::Header {
            chain_id: chain_id.to_owned(),
            height: i64::from(height),
            time: Some(timestamp(time)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not served by ordermeta-dydx-sim"))
}

#[tonic::async_trait]
impl Query for GrpcNode {
    async fn accounts(
        &self,
        _: Request<auth::QueryAccountsRequest>,
    ) -> Result<Response<auth::QueryAccountsResponse>, Status> {
        Err(unimplemented("Accounts"))
    }

    async fn account(
        &self,
        request: Request<auth::QueryAccountRequest>,
    ) -> Result<Response<auth::QueryAccountResponse>, Status> {
        let address = request.into_inner().address;
        let info = self
            .chain
            .lock()
            .account(&address)
            .ok_or_else(|| Status::not_found(format!("account {address} not found")))?;
        let pub_key = info.pubkey.map(|key| Any {
            type_url: PubKey::type_url(),
            value: PubKey { key }.encode_to_vec(),
        });
        let account = auth::BaseAccount {
            address,
            pub_key,
            account_number: info.account_number,
            sequence: info.sequence,
        };
        Ok(Response::new(auth::QueryAccountResponse {
            account: Some(Any {
                type_url: auth::BaseAccount::type_url(),
                value: account.encode_to_vec(),
            }),
        }))
    }

    async fn account_address_by_id(
        &self,
        _: Request<auth::QueryAccountAddressByIdRequest>,
    ) -> Result<Response<auth::QueryAccountAddressByIdResponse>, Status> {
        Err(unimplemented("AccountAddressByID"))
    }

    async fn params(
        &self,
        _: Request<auth::QueryParamsRequest>,
    ) -> Result<Response<auth::QueryParamsResponse>, Status> {
        Err(unimplemented("Params"))
    }

    async fn module_accounts(
        &self,
        _: Request<auth::QueryModuleAccountsRequest>,
    ) -> Result<Response<auth::QueryModuleAccountsResponse>, Status> {
        Err(unimplemented("ModuleAccounts"))
    }

    async fn module_account_by_name(
        &self,
        _: Request<auth::QueryModuleAccountByNameRequest>,
    ) -> Result<Response<auth::QueryModuleAccountByNameResponse>, Status> {
        Err(unimplemented("ModuleAccountByName"))
    }

    async fn bech32_prefix(
        &self,
        _: Request<auth::Bech32PrefixRequest>,
    ) -> Result<Response<auth::Bech32PrefixResponse>, Status> {
        Ok(Response::new(auth::Bech32PrefixResponse {
            bech32_prefix: crate::tx::BECH32_PREFIX.to_owned(),
        }))
    }

    async fn address_bytes_to_string(
        &self,
        _: Request<auth::AddressBytesToStringRequest>,
    ) -> Result<Response<auth::AddressBytesToStringResponse>, Status> {
        Err(unimplemented("AddressBytesToString"))
    }

    async fn address_string_to_bytes(
        &self,
        _: Request<auth::AddressStringToBytesRequest>,
    ) -> Result<Response<auth::AddressStringToBytesResponse>, Status> {
        Err(unimplemented("AddressStringToBytes"))
    }

    async fn account_info(
        &self,
        _: Request<auth::QueryAccountInfoRequest>,
    ) -> Result<Response<auth::QueryAccountInfoResponse>, Status> {
        Err(unimplemented("AccountInfo"))
    }
}

#[tonic::async_trait]
impl TmService for GrpcNode {
    async fn get_node_info(
        &self,
        _: Request<tm::GetNodeInfoRequest>,
    ) -> Result<Response<tm::GetNodeInfoResponse>, Status> {
        let chain_id = self.chain.lock().chain_id.clone();
        Ok(Response::new(tm::GetNodeInfoResponse {
            default_node_info: Some(cosmos_sdk_proto::tendermint::p2p::DefaultNodeInfo {
                network: chain_id,
                moniker: "ordermeta-dydx-sim".to_owned(),
                ..Default::default()
            }),
            application_version: Some(tm::VersionInfo {
                name: "ordermeta-dydx-sim".to_owned(),
                app_name: "ordermeta-dydx-sim".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Default::default()
            }),
        }))
    }

    async fn get_syncing(
        &self,
        _: Request<tm::GetSyncingRequest>,
    ) -> Result<Response<tm::GetSyncingResponse>, Status> {
        Ok(Response::new(tm::GetSyncingResponse { syncing: false }))
    }

    async fn get_latest_block(
        &self,
        _: Request<tm::GetLatestBlockRequest>,
    ) -> Result<Response<tm::GetLatestBlockResponse>, Status> {
        let chain = self.chain.lock();
        Ok(Response::new(tm::GetLatestBlockResponse {
            block_id: None,
            block: None,
            sdk_block: Some(sdk_block(&chain.chain_id, chain.height, chain.block_time)),
        }))
    }

    async fn get_block_by_height(
        &self,
        request: Request<tm::GetBlockByHeightRequest>,
    ) -> Result<Response<tm::GetBlockByHeightResponse>, Status> {
        let height = request.into_inner().height;
        let chain = self.chain.lock();
        let time = u32::try_from(height)
            .ok()
            .and_then(|h| chain.block_time_at(h).map(|t| (h, t)));
        let Some((height, time)) = time else {
            return Err(Status::invalid_argument(format!(
                "requested block height {height} is not available (latest {})",
                chain.height
            )));
        };
        Ok(Response::new(tm::GetBlockByHeightResponse {
            block_id: None,
            block: None,
            sdk_block: Some(sdk_block(&chain.chain_id, height, time)),
        }))
    }

    async fn get_latest_validator_set(
        &self,
        _: Request<tm::GetLatestValidatorSetRequest>,
    ) -> Result<Response<tm::GetLatestValidatorSetResponse>, Status> {
        Err(unimplemented("GetLatestValidatorSet"))
    }

    async fn get_validator_set_by_height(
        &self,
        _: Request<tm::GetValidatorSetByHeightRequest>,
    ) -> Result<Response<tm::GetValidatorSetByHeightResponse>, Status> {
        Err(unimplemented("GetValidatorSetByHeight"))
    }

    async fn abci_query(
        &self,
        _: Request<tm::AbciQueryRequest>,
    ) -> Result<Response<tm::AbciQueryResponse>, Status> {
        Err(unimplemented("ABCIQuery"))
    }
}

#[tonic::async_trait]
impl TxService for GrpcNode {
    async fn simulate(
        &self,
        request: Request<txpb::SimulateRequest>,
    ) -> Result<Response<txpb::SimulateResponse>, Status> {
        let request = request.into_inner();
        if request.tx_bytes.is_empty() {
            return Err(Status::invalid_argument("empty txBytes is not allowed"));
        }
        self.chain
            .lock()
            .simulate(&request.tx_bytes)
            // The SDK reports a failed simulation as a gRPC error carrying the log.
            .map_err(|e| Status::invalid_argument(e.log))?;
        Ok(Response::new(txpb::SimulateResponse {
            gas_info: Some(GasInfo {
                gas_wanted: SIMULATED_GAS,
                gas_used: SIMULATED_GAS,
            }),
            result: Some(AbciResult::default()),
        }))
    }

    /// The tx and its DeliverTx result once a block included it; NotFound before that, and
    /// always for short-term and rejected txs (no block ever includes them).
    async fn get_tx(
        &self,
        request: Request<txpb::GetTxRequest>,
    ) -> Result<Response<txpb::GetTxResponse>, Status> {
        let hash = request.into_inner().hash;
        let chain = self.chain.lock();
        let Some(included) = chain.included_tx(&hash).cloned() else {
            return Err(Status::not_found(format!("tx not found: {hash}")));
        };
        drop(chain);
        // `TxRaw` and `Tx` share their wire layout (fields 1-3), so the raw bytes are a valid `Tx`.
        let tx = txpb::Tx::decode(included.bytes.as_slice())
            .map_err(|e| Status::internal(format!("stored tx does not decode: {e}")))?;
        let result = &included.result;
        let (codespace, raw_log) = match &result.result {
            Ok(()) => (String::new(), String::new()),
            Err(e) => (e.codespace.clone(), e.log.clone()),
        };
        Ok(Response::new(txpb::GetTxResponse {
            tx: Some(tx),
            tx_response: Some(TxResponse {
                height: i64::from(result.height),
                txhash: result.tx_hash.clone(),
                codespace,
                code: result.code(),
                raw_log,
                tx: Some(Any {
                    type_url: txpb::Tx::type_url(),
                    value: included.bytes,
                }),
                timestamp: included
                    .block_time
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                gas_wanted: SIMULATED_GAS as i64,
                gas_used: SIMULATED_GAS as i64,
                ..Default::default()
            }),
        }))
    }

    async fn broadcast_tx(
        &self,
        request: Request<txpb::BroadcastTxRequest>,
    ) -> Result<Response<txpb::BroadcastTxResponse>, Status> {
        let request = request.into_inner();
        if request.tx_bytes.is_empty() {
            return Err(Status::invalid_argument("invalid empty tx"));
        }
        let outcome = self.chain.lock().check_tx(&request.tx_bytes);
        // Sync mode answers after CheckTx: height 0, and errors as code/codespace/raw_log.
        let (code, codespace, raw_log) = match outcome.result {
            Ok(()) => (0, String::new(), "[]".to_owned()),
            Err(e) => (e.code, e.codespace, e.log),
        };
        tracing::debug!(
            hash = %outcome.hash,
            height = outcome.height,
            code,
            codespace = %codespace,
            "BroadcastTx"
        );
        Ok(Response::new(txpb::BroadcastTxResponse {
            tx_response: Some(TxResponse {
                height: 0,
                txhash: outcome.hash,
                codespace,
                code,
                raw_log,
                ..Default::default()
            }),
        }))
    }

    async fn get_txs_event(
        &self,
        _: Request<txpb::GetTxsEventRequest>,
    ) -> Result<Response<txpb::GetTxsEventResponse>, Status> {
        Err(unimplemented("GetTxsEvent"))
    }

    async fn get_block_with_txs(
        &self,
        _: Request<txpb::GetBlockWithTxsRequest>,
    ) -> Result<Response<txpb::GetBlockWithTxsResponse>, Status> {
        Err(unimplemented("GetBlockWithTxs"))
    }

    async fn tx_decode(
        &self,
        _: Request<txpb::TxDecodeRequest>,
    ) -> Result<Response<txpb::TxDecodeResponse>, Status> {
        Err(unimplemented("TxDecode"))
    }

    async fn tx_encode(
        &self,
        _: Request<txpb::TxEncodeRequest>,
    ) -> Result<Response<txpb::TxEncodeResponse>, Status> {
        Err(unimplemented("TxEncode"))
    }

    async fn tx_encode_amino(
        &self,
        _: Request<txpb::TxEncodeAminoRequest>,
    ) -> Result<Response<txpb::TxEncodeAminoResponse>, Status> {
        Err(unimplemented("TxEncodeAmino"))
    }

    async fn tx_decode_amino(
        &self,
        _: Request<txpb::TxDecodeAminoRequest>,
    ) -> Result<Response<txpb::TxDecodeAminoResponse>, Status> {
        Err(unimplemented("TxDecodeAmino"))
    }
}
