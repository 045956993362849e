-- Idempotent answers as JSON of the service's own types, no longer as protobuf.
--
-- Until now `idempotency_keys.response` held the first answer encoded as the gRPC message
-- (reservation.v1 Reservation, Payment or Wallet). The store now keeps answers in its own
-- format: `answer jsonb`, the serde form of the domain's Reservation, Payment and Wallet.
--
-- Old answers are converted, not dropped. Dropping them would be safe for some operations and
-- not for others, within the retention window (RESERVATION_IDEMPOTENCY_RETENTION_HOURS):
--   * pay: a retry would run again and be refused ALREADY_PAID by the reservation's own status
--     (never a second debit), but a replay-only retry would get NOTHING_TO_REPLAY instead of
--     its payment;
--   * hold: a retry would run again and get its own live hold back from hold_seat, but one
--     whose hold has run out would hold the seat anew;
--   * charge: a retry would run again and credit the wallet a second time. Not safe.
-- So every stored answer is decoded here, in SQL, from the protobuf wire format (varints and
-- one length-delimited string; field numbers as in proto/reservation/v1/reservation.proto,
-- which never changed) into the JSON the new code reads: a retry across the upgrade gets its
-- first answer, and nothing runs twice.
--
-- A row whose bytes do not decode (the old code could not read it either) keeps a null answer:
-- its retry is refused as INTERNAL (an unreadable stored answer), never run again.
--
-- During a rolling upgrade, old instances still running after this migration find no
-- `response` column: their idempotent calls fail inside their own transaction, which rolls the
-- operation back with it (no charge, payment or hold is made without its answer), and the
-- client's retry is answered by a new instance. Calls without an Idempotency-Key are
-- unaffected.

-- The rewrite holds idempotency_keys locked (idempotent calls wait; others do not touch the
-- table) for about 40 µs per stored answer: 100,000 answers took 4 s on a development machine.
-- The table holds only the last RESERVATION_IDEMPOTENCY_RETENTION_HOURS of answers. The pool's
-- statement_timeout is sized for requests, not for this one rewrite.
set local statement_timeout = 0;

-- The fields of one protobuf message: element n is field n's value as text (a varint as the
-- signed 64-bit integer int64 and int32 are encoded as; a length-delimited field as UTF-8
-- text), null where absent. Null for anything these messages never hold (other wire types,
-- field numbers past 32) and for truncated input.
create function reservation_0003_proto_fields(message bytea) returns text[]
language plpgsql immutable strict
as $$
declare
    fields text[] := '{}';
    pos    integer := 0;
    len    integer := length(message);
    key    bigint;
    value  bigint;
    shift  integer;
    b      integer;
    wire   integer;
    field  bigint;
begin
    while pos < len loop
        -- The key, a varint: field number << 3 | wire type.
        key := 0;
        shift := 0;
        loop
            if pos >= len or shift > 63 then
                return null;
            end if;
            b := get_byte(message, pos);
            pos := pos + 1;
            key := key | ((b & 127)::bigint << shift);
            shift := shift + 7;
            exit when b < 128;
        end loop;
        wire := (key & 7)::integer;
        field := key >> 3;
        if field < 1 or field > 32 or wire not in (0, 2) then
            return null;
        end if;
        -- The value (wire type 0) or the length (wire type 2), a varint of at most 64 bits.
        value := 0;
        shift := 0;
        loop
            if pos >= len or shift > 63 then
                return null;
            end if;
            b := get_byte(message, pos);
            pos := pos + 1;
            value := value | ((b & 127)::bigint << shift);
            shift := shift + 7;
            exit when b < 128;
        end loop;
        if wire = 0 then
            fields[field] := value::text;
        else
            if value < 0 or value > len - pos then
                return null;
            end if;
            fields[field] := convert_from(substring(message from pos + 1 for value::integer), 'UTF8');
            pos := pos + value::integer;
        end if;
    end loop;
    return fields;
end
$$;

-- The old answer of `operation` as the new JSON, or null when it does not decode. Proto3 leaves
-- out fields equal to 0 (or ""), hence the defaults.
create function reservation_0003_answer(operation text, response bytea) returns jsonb
language plpgsql immutable
as $$
declare
    f text[];
begin
    f := reservation_0003_proto_fields(response);
    if f is null then
        return null;
    end if;
    return case operation
        when 'charge' then jsonb_build_object(
            'user_id',       coalesce(f[1]::bigint, 0),
            'balance_minor', coalesce(f[2]::bigint, 0))
        when 'pay' then jsonb_build_object(
            'id',                  coalesce(f[1]::bigint, 0),
            'reservation_id',      coalesce(f[2]::bigint, 0),
            'user_id',             coalesce(f[3]::bigint, 0),
            'amount_minor',        coalesce(f[4]::bigint, 0),
            'paid_at_ms',          coalesce(f[5]::bigint, 0),
            'balance_after_minor', coalesce(f[6]::bigint, 0))
        when 'hold' then jsonb_build_object(
            'id',                coalesce(f[1]::bigint, 0),
            'user_id',           coalesce(f[2]::bigint, 0),
            'concert_option_id', coalesce(f[3]::bigint, 0),
            'seat_no',           coalesce(f[4]::integer, 0),
            -- ReservationStatus: HELD = 1, CONFIRMED = 2, EXPIRED = 3, CANCELLED = 4; anything
            -- else leaves the status null, which the new code refuses to read.
            'status',            case f[5] when '1' then 'HELD' when '2' then 'CONFIRMED'
                                           when '3' then 'EXPIRED' when '4' then 'CANCELLED' end,
            'price_minor',       coalesce(f[6]::bigint, 0),
            'grade',             coalesce(f[7], ''),
            'created_at_ms',     coalesce(f[8]::bigint, 0),
            'expires_at_ms',     coalesce(f[9]::bigint, 0))
    end;
exception when others then
    -- Not UTF-8, or a field of the wrong wire type for its number (text where a number was).
    return null;
end
$$;

alter table idempotency_keys
    alter column response type jsonb using reservation_0003_answer(operation, response);
alter table idempotency_keys rename column response to answer;

drop function reservation_0003_answer(text, bytea);
drop function reservation_0003_proto_fields(bytea);
