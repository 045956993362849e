-- Seat holds, bookings, wallets and payments. Exclusivity of a seat is enforced by the
-- database, never by the application: seat_claims has one row per (option, seat), and a hold is
-- a conditional upsert that either creates the row or reclaims it when its hold has run out.

create sequence reservations_id_seq;

create table reservations (
    id                bigint      primary key default nextval('reservations_id_seq'),
    user_id           bigint      not null,
    concert_option_id bigint      not null,
    seat_no           integer     not null,
    status            text        not null check (status in ('HELD', 'CONFIRMED', 'EXPIRED', 'CANCELLED')),
    price_minor       bigint      not null check (price_minor >= 0),
    grade             text        not null,
    created_at        timestamptz not null default now(),
    expires_at        timestamptz not null,
    confirmed_at      timestamptz
);
alter sequence reservations_id_seq owned by reservations.id;

-- The sweeper's scan: holds that are still marked HELD, by deadline.
create index reservations_held_by_expiry on reservations (expires_at) where status = 'HELD';

-- Who holds or owns each seat. held_until null = sold; a past held_until = free to reclaim.
create table seat_claims (
    concert_option_id bigint      not null,
    seat_no           integer     not null,
    reservation_id    bigint      not null,
    held_until        timestamptz,
    primary key (concert_option_id, seat_no) include (held_until)
);
create index seat_claims_by_expiry on seat_claims (held_until) where held_until is not null;

-- Balances in integer minor units; never negative, bounded so sums cannot overflow.
create table wallets (
    user_id       bigint primary key,
    balance_minor bigint not null check (balance_minor >= 0 and balance_minor <= 1000000000000000)
);

-- One payment per reservation, ever.
create table payments (
    id             bigint generated always as identity primary key,
    reservation_id bigint      not null unique references reservations (id),
    user_id        bigint      not null,
    amount_minor   bigint      not null check (amount_minor >= 0),
    balance_after  bigint      not null,
    paid_at        timestamptz not null default now()
);

-- First answers of mutating calls made with an Idempotency-Key, per user and operation.
create table idempotency_keys (
    operation   text        not null,
    user_id     bigint      not null,
    key         text        not null,
    fingerprint text        not null,
    response    bytea,
    created_at  timestamptz not null default now(),
    primary key (operation, user_id, key)
);
create index idempotency_keys_by_age on idempotency_keys (created_at);
