-- Which waiting room admits to a concert: the shared default room (the original clients' room,
-- whose tokens carry no concertId) or the concert's own. A new concert gets its own room unless
-- it says otherwise.

alter table concerts add column shared_room boolean not null default false;
