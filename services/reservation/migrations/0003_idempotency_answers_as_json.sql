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

-- The fields of one protobuf message: {"<field number>": value}, varints as bigint (two's
-- complement, as int64 and int32 are encoded), length-delimited fields as UTF-8 text. Raises
-- on anything else or on truncated input.
create function reservation_0003_proto_fields(message bytea) returns jsonb
language plpgsql immutable strict
as $$
declare
    fields jsonb := '{}';
    pos    integer := 0;
    len    integer := length(message);
    tag    numeric;
    value  numeric;
    scale  numeric;
    b      integer;
    n      integer;
    wire   integer;
    field  text;
begin
    while pos < len loop
        -- Key: varint (field number << 3 | wire type).
        tag := 0;
        scale := 1;
        loop
            if pos >= len then
                raise exception 'truncated key';
            end if;
            b := get_byte(message, pos);
            pos := pos + 1;
            tag := tag + (b & 127) * scale;
            scale := scale * 128;
            exit when b < 128;
        end loop;
        wire := (tag % 8)::integer;
        field := trunc(tag / 8)::text;
        if wire = 0 or wire = 2 then
            value := 0;
            scale := 1;
            n := 0;
            loop
                if pos >= len or n >= 10 then
                    raise exception 'truncated varint';
                end if;
                b := get_byte(message, pos);
                pos := pos + 1;
                n := n + 1;
                value := value + (b & 127) * scale;
                scale := scale * 128;
                exit when b < 128;
            end loop;
            if wire = 0 then
                value := mod(value, 18446744073709551616);
                if value >= 9223372036854775808 then
                    value := value - 18446744073709551616;
                end if;
                fields := fields || jsonb_build_object(field, value::bigint);
            else
                if value > len - pos then
                    raise exception 'truncated field %', field;
                end if;
                fields := fields || jsonb_build_object(field,
                    convert_from(substring(message from pos + 1 for value::integer), 'UTF8'));
                pos := pos + value::integer;
            end if;
        else
            raise exception 'unexpected wire type % of field %', wire, field;
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
    f jsonb;
begin
    if response is null then
        return null;
    end if;
    f := reservation_0003_proto_fields(response);
    return case operation
        when 'charge' then jsonb_build_object(
            'user_id',       coalesce((f->>'1')::bigint, 0),
            'balance_minor', coalesce((f->>'2')::bigint, 0))
        when 'pay' then jsonb_build_object(
            'id',                  coalesce((f->>'1')::bigint, 0),
            'reservation_id',      coalesce((f->>'2')::bigint, 0),
            'user_id',             coalesce((f->>'3')::bigint, 0),
            'amount_minor',        coalesce((f->>'4')::bigint, 0),
            'paid_at_ms',          coalesce((f->>'5')::bigint, 0),
            'balance_after_minor', coalesce((f->>'6')::bigint, 0))
        when 'hold' then jsonb_build_object(
            'id',                coalesce((f->>'1')::bigint, 0),
            'user_id',           coalesce((f->>'2')::bigint, 0),
            'concert_option_id', coalesce((f->>'3')::bigint, 0),
            'seat_no',           coalesce((f->>'4')::integer, 0),
            -- ReservationStatus: HELD = 1, CONFIRMED = 2, EXPIRED = 3, CANCELLED = 4; anything
            -- else leaves the status null, which the new code refuses to read.
            'status',            case f->>'5' when '1' then 'HELD' when '2' then 'CONFIRMED'
                                              when '3' then 'EXPIRED' when '4' then 'CANCELLED' end,
            'price_minor',       coalesce((f->>'6')::bigint, 0),
            'grade',             coalesce(f->>'7', ''),
            'created_at_ms',     coalesce((f->>'8')::bigint, 0),
            'expires_at_ms',     coalesce((f->>'9')::bigint, 0))
    end;
exception when others then
    return null;
end
$$;

alter table idempotency_keys
    alter column response type jsonb using reservation_0003_answer(operation, response);
alter table idempotency_keys rename column response to answer;

drop function reservation_0003_answer(text, bytea);
drop function reservation_0003_proto_fields(bytea);
