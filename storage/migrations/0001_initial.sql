-- The seed's schema. Reading columns of packet and quarantine follow
-- protocol::reading_fields; storage tests check that they agree.

CREATE TABLE pub (
  pub_id      serial PRIMARY KEY,
  created_at  timestamptz NOT NULL DEFAULT now(),
  latitude    double precision,
  longitude   double precision,
  altitude    real,
  orientation real,
  hash        integer UNIQUE NOT NULL,
  creator     text
);

CREATE TABLE sub (
  sub_id     serial PRIMARY KEY,
  email      text UNIQUE NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Candidate subscribers, not yet confirmed.
CREATE TABLE csub (
  csub_id    serial PRIMARY KEY,
  email      text UNIQUE NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subpub (
  sub_id integer REFERENCES sub (sub_id),
  pub_id integer REFERENCES pub (pub_id),
  PRIMARY KEY (sub_id, pub_id)
);

CREATE TABLE packet (
  id             serial PRIMARY KEY,
  pub_id         integer NOT NULL REFERENCES pub (pub_id),
  created_at     timestamptz NOT NULL,
  saved_at       timestamptz NOT NULL DEFAULT now(),
  voltage        real,
  frequency      real,
  protected      boolean NOT NULL,
  current        real,
  active_power   real,
  apparent_power real,
  reactive_power real,
  power_factor   real,
  imp_actv_enrg  real,
  exp_actv_enrg  real,
  imp_rctv_enrg  real,
  exp_rctv_enrg  real,
  ttl_actv_enrg  real,
  ttl_rctv_enrg  real,
  latitude       double precision,
  longitude      double precision
);

CREATE INDEX packet_pub_id_created_at_idx ON packet (pub_id, created_at);

-- Packets whose pub is unknown: the columns of packet, pub_id as the
-- device sent it and without the foreign key.
CREATE TABLE quarantine (
  id             serial PRIMARY KEY,
  pub_id         integer NOT NULL,
  created_at     timestamptz NOT NULL,
  saved_at       timestamptz NOT NULL DEFAULT now(),
  voltage        real,
  frequency      real,
  protected      boolean NOT NULL,
  current        real,
  active_power   real,
  apparent_power real,
  reactive_power real,
  power_factor   real,
  imp_actv_enrg  real,
  exp_actv_enrg  real,
  imp_rctv_enrg  real,
  exp_rctv_enrg  real,
  ttl_actv_enrg  real,
  ttl_rctv_enrg  real,
  latitude       double precision,
  longitude      double precision
);

-- Device configurations; cconfo is to confo what csub is to sub.
CREATE TABLE confo (
  id          serial PRIMARY KEY,
  device_name text NOT NULL,
  ssid        text NOT NULL,
  hash        integer,
  email       text,
  longitude   double precision,
  latitude    double precision,
  device_time timestamptz,
  received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX confo_device_name_ssid_id_idx ON confo (device_name, ssid, id);

CREATE TABLE cconfo (
  id          serial PRIMARY KEY,
  device_name text NOT NULL,
  ssid        text NOT NULL,
  hash        integer,
  email       text,
  longitude   double precision,
  latitude    double precision,
  device_time timestamptz,
  received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX cconfo_device_name_ssid_id_idx ON cconfo (device_name, ssid, id);
