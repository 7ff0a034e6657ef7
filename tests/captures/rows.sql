-- What a golden capture's replay must leave in the database, one table per
-- query, in an order and a format that do not depend on ids, commit times
-- or the session's time zone. Read by scripts/make-captures (psql -At) and
-- by the CaptureGolden test.
SELECT 'packet', pub_id, extract(epoch FROM created_at), voltage, frequency, protected, current,
       active_power, apparent_power, reactive_power, power_factor, imp_actv_enrg, exp_actv_enrg,
       imp_rctv_enrg, exp_rctv_enrg, ttl_actv_enrg, ttl_rctv_enrg, latitude, longitude
  FROM packet ORDER BY 2, 3, 4;
SELECT 'quarantine', pub_id, extract(epoch FROM created_at), voltage, protected
  FROM quarantine ORDER BY 2, 3, 4;
SELECT 'pub', hash, creator, longitude, latitude FROM pub ORDER BY 2;
SELECT 'confo', device_name, ssid, hash, email FROM confo ORDER BY 2, 3, 4;
SELECT 'cconfo', device_name, ssid, hash, email FROM cconfo ORDER BY 2, 3, 4;
SELECT 'csub', email FROM csub ORDER BY 2;
