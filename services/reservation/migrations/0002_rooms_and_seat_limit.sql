-- Waiting rooms and the per-user seat limit.
--
-- A reservation remembers its concert (the seat limit counts per user and concert) and the
-- waiting room whose token admitted the hold (null = the shared default room): paying needs a
-- token from the same room. Rows from before this migration have neither.

alter table reservations
    add column concert_id              bigint,
    add column waiting_room_concert_id bigint;

-- The seat limit's count: one user's live holds and purchases of one concert.
create index reservations_live_by_user_concert
    on reservations (user_id, concert_id) include (status, expires_at)
    where status in ('HELD', 'CONFIRMED');

-- A hold, in one statement (`select ... from hold_seat(...)`), so one round trip:
--
-- 1. With a limit (p_max_seats > 0), the caller's holds for this concert serialise on a
--    transaction-scoped advisory lock keyed by (user, concert); other users never wait on it.
-- 2. The caller's own live hold of this seat is returned as it is (a retry after a timeout):
--    never SEAT_TAKEN, never counted twice.
-- 3. With a limit, the caller's live holds and purchases of the concert are counted; at the
--    limit the function raises SQLSTATE SL001 (SEAT_LIMIT_REACHED) and holds nothing.
-- 4. The claim upsert: inserts the seat's claim, or reclaims it when its hold has run out,
--    and writes the reservation. A live hold or a sale of someone else returns no row
--    (SEAT_TAKEN), unless the winner was a concurrent retry of the caller's own (see 2).
--
-- The count is right because this is a VOLATILE PL/pgSQL function under READ COMMITTED: every
-- statement in it takes a fresh snapshot, so the count, run after the lock is granted, sees
-- every hold committed by whoever held the lock before. Under REPEATABLE READ or SERIALIZABLE
-- the snapshot would predate the lock, so the function refuses to run there (SL002).
create function hold_seat(
    p_option_id       bigint,
    p_seat_no         integer,
    p_user_id         bigint,
    p_concert_id      bigint,
    p_room_concert_id bigint,
    p_price_minor     bigint,
    p_grade           text,
    p_hold_secs       double precision,
    p_max_seats       integer
) returns setof reservations
language plpgsql volatile
as $$
declare
    live_seats bigint;
begin
    if p_max_seats > 0 then
        if current_setting('transaction_isolation') <> 'read committed' then
            raise exception 'hold_seat counts seats correctly only under READ COMMITTED, not %',
                current_setting('transaction_isolation')
                using errcode = 'SL002';
        end if;
        perform pg_advisory_xact_lock(
            hashtextextended('hold_seat:' || p_user_id || ':' || p_concert_id, 0));
    end if;

    return query
        select r.* from seat_claims c join reservations r on r.id = c.reservation_id
        where c.concert_option_id = p_option_id and c.seat_no = p_seat_no
          and c.held_until > now() and r.user_id = p_user_id and r.status = 'HELD';
    if found then
        return;
    end if;

    if p_max_seats > 0 then
        select count(*) into live_seats from reservations
        where user_id = p_user_id and concert_id = p_concert_id
          and status in ('HELD', 'CONFIRMED') and (status = 'CONFIRMED' or expires_at > now());
        if live_seats >= p_max_seats then
            raise exception 'user % already holds or owns % seats of concert % (limit %)',
                p_user_id, live_seats, p_concert_id, p_max_seats
                using errcode = 'SL001';
        end if;
    end if;

    return query
        with claim as (
            insert into seat_claims as c (concert_option_id, seat_no, reservation_id, held_until)
            values (p_option_id, p_seat_no, nextval('reservations_id_seq'),
                    now() + make_interval(secs => p_hold_secs))
            on conflict (concert_option_id, seat_no) do update
                set reservation_id = excluded.reservation_id, held_until = excluded.held_until
                where c.held_until is not null and c.held_until <= now()
            returning c.reservation_id, c.held_until
        ), held as (
            insert into reservations (id, user_id, concert_option_id, seat_no, status,
                                      price_minor, grade, expires_at, concert_id,
                                      waiting_room_concert_id)
            select claim.reservation_id, p_user_id, p_option_id, p_seat_no, 'HELD',
                   p_price_minor, p_grade, claim.held_until, p_concert_id, p_room_concert_id
            from claim
            returning *
        )
        select * from held;
    if found then
        return;
    end if;

    -- Taken. Without the lock a concurrent retry of the caller's own may have won the seat: the
    -- upsert waited for it to commit, and this statement's fresh snapshot sees it.
    return query
        select r.* from seat_claims c join reservations r on r.id = c.reservation_id
        where c.concert_option_id = p_option_id and c.seat_no = p_seat_no
          and c.held_until > now() and r.user_id = p_user_id and r.status = 'HELD';
end
$$;
