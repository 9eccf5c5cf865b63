-- The pre-Alembic store (schema_version 1) as its metadata.create_all created it on sqlite.
-- Generated from triagebot commit 876a3c0, integrations/store.py (CreateTable/CreateIndex compiled
-- for this dialect), plus the schema_meta row that store wrote on first start.

CREATE TABLE artefacts (
	run_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	ref TEXT NOT NULL, 
	content TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (run_id, kind)
);
CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	source VARCHAR(64) NOT NULL, 
	tool VARCHAR(128) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	latency_ms INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_audit_log_run_id ON audit_log (run_id);
CREATE TABLE cursors (
	name VARCHAR(128) NOT NULL, 
	value TEXT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
CREATE TABLE evidence (
	id INTEGER NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	evidence_id VARCHAR(16) NOT NULL, 
	source VARCHAR(64) NOT NULL, 
	tool VARCHAR(128) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	title TEXT NOT NULL, 
	url TEXT, 
	latency_ms INTEGER NOT NULL, 
	summary TEXT NOT NULL, 
	first_party INTEGER NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_evidence_run_id ON evidence (run_id);
CREATE TABLE feedback (
	id INTEGER NOT NULL, 
	run_id VARCHAR(64) NOT NULL, 
	user_id VARCHAR(64) NOT NULL, 
	vote VARCHAR(8) NOT NULL, 
	comment TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_feedback_run_user UNIQUE (run_id, user_id)
);
CREATE TABLE schema_meta (
	"key" VARCHAR(64) NOT NULL, 
	value VARCHAR(255) NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE seen_keys (
	"key" VARCHAR(255) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE INDEX ix_seen_keys_created_at ON seen_keys (created_at);
CREATE TABLE threads (
	ticket_id BIGINT NOT NULL, 
	channel VARCHAR(64) NOT NULL, 
	thread_ts VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (ticket_id)
);
CREATE INDEX ix_threads_channel_ts ON threads (channel, thread_ts);
CREATE TABLE ticket_state (
	ticket_id BIGINT NOT NULL, 
	public_customer_comments INTEGER NOT NULL, 
	last_version VARCHAR(64) NOT NULL, 
	extra_json TEXT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (ticket_id)
);
CREATE TABLE triage_runs (
	run_id VARCHAR(64) NOT NULL, 
	ticket_id BIGINT NOT NULL, 
	ticket_version VARCHAR(64) NOT NULL, 
	"trigger" VARCHAR(32) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	report_json TEXT, 
	error TEXT NOT NULL, 
	channel VARCHAR(64), 
	thread_ts VARCHAR(64), 
	heartbeat_at DATETIME NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	mode VARCHAR(16), 
	product_area VARCHAR(32), 
	confidence VARCHAR(16), 
	fetch_ms INTEGER, 
	intake_ms INTEGER, 
	research_ms INTEGER, 
	synthesis_ms INTEGER, 
	total_ms INTEGER, 
	llm_calls INTEGER, 
	input_tokens INTEGER, 
	output_tokens INTEGER, 
	cache_read_tokens INTEGER, 
	cache_creation_tokens INTEGER, 
	cost_usd FLOAT, 
	PRIMARY KEY (run_id), 
	CONSTRAINT uq_triage_runs_ticket_version UNIQUE (ticket_id, ticket_version)
);
CREATE INDEX ix_triage_runs_status_heartbeat ON triage_runs (status, heartbeat_at);
CREATE INDEX ix_triage_runs_ticket_created ON triage_runs (ticket_id, created_at);
INSERT INTO schema_meta (key, value) VALUES ('schema_version', '1');
