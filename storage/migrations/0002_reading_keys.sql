-- Exactly-once storage (issue 4): a packet is the same packet when its pub,
-- its time and every reading match, NULLs included; writers insert with
-- ON CONFLICT DO NOTHING against these keys, so a batch retried after a
-- commit of unknown outcome, or re-delivered from the spool, is absorbed.
-- Two different readings at the same time are different packets.

-- Duplicates stored before this migration (a device's resend after a lost
-- acknowledgement) would block the unique indexes: keep the first of each.
-- PARTITION BY groups NULLs together, as NULLS NOT DISTINCT compares them.
DELETE FROM packet
 WHERE id IN (
   SELECT id FROM (
     SELECT id, row_number() OVER (
              PARTITION BY pub_id, created_at, protected, voltage, frequency, current,
                           active_power, apparent_power, reactive_power, power_factor,
                           imp_actv_enrg, exp_actv_enrg, imp_rctv_enrg, exp_rctv_enrg,
                           ttl_actv_enrg, ttl_rctv_enrg, latitude, longitude
              ORDER BY id) AS n
       FROM packet) numbered
    WHERE n > 1);

DELETE FROM quarantine
 WHERE id IN (
   SELECT id FROM (
     SELECT id, row_number() OVER (
              PARTITION BY pub_id, created_at, protected, voltage, frequency, current,
                           active_power, apparent_power, reactive_power, power_factor,
                           imp_actv_enrg, exp_actv_enrg, imp_rctv_enrg, exp_rctv_enrg,
                           ttl_actv_enrg, ttl_rctv_enrg, latitude, longitude
              ORDER BY id) AS n
       FROM quarantine) numbered
    WHERE n > 1);

-- Leads with (pub_id, created_at), so it serves every query the index it
-- replaces served.
DROP INDEX packet_pub_id_created_at_idx;

CREATE UNIQUE INDEX packet_reading_key ON packet (
  pub_id, created_at, protected, voltage, frequency, current, active_power, apparent_power,
  reactive_power, power_factor, imp_actv_enrg, exp_actv_enrg, imp_rctv_enrg, exp_rctv_enrg,
  ttl_actv_enrg, ttl_rctv_enrg, latitude, longitude
) NULLS NOT DISTINCT;

CREATE UNIQUE INDEX quarantine_reading_key ON quarantine (
  pub_id, created_at, protected, voltage, frequency, current, active_power, apparent_power,
  reactive_power, power_factor, imp_actv_enrg, exp_actv_enrg, imp_rctv_enrg, exp_rctv_enrg,
  ttl_actv_enrg, ttl_rctv_enrg, latitude, longitude
) NULLS NOT DISTINCT;
