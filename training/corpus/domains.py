"""Which tags name real-world sound sources or actions, and the domain of a clip from its tags.

Used to count the corpus (per-domain table, real-world-tagged clips, real-world tags in the
vocabulary), never to change what is trained on. The word lists are cleaned tag words (singular,
lower case, as training/corpus/tags.py writes them); words that name no sound (seasons, 'note', 'place') are
not in them. A speech clip is ``speech`` whatever its words say
(a spoken 'dog' is not a dog); rendered soundfont notes are ``rendered notes``.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, Iterable

_WORDS = {
    "animals": """
animal bird birdsong chirp chirping tweet tweeting cheep crow raven owl hoot hooting duck quack goose
chicken hen rooster cock crowing cuckoo dove pigeon coo cooing seagull gull parrot eagle hawk vulture
sparrow robin blackbird woodpecker peck turkey gobble peacock swan penguin dog puppy bark barking woof
growl growling howl howling wolf fox coyote hyena cat kitten meow purr purring hiss lion tiger leopard
roar roaring bear horse neigh whinny gallop galloping hoof pony donkey mule bray cow moo bull calf
sheep lamb baa bleat goat pig piglet oink grunt boar elephant trumpeting monkey ape gorilla chimpanzee
mouse rat squeak squeaking hamster rabbit squirrel bat frog toad croak croaking cricket insect bee
buzz buzzing wasp fly mosquito beetle cicada grasshopper snake rattlesnake lizard crocodile alligator
whale dolphin seal walrus fish deer moose elk camel zebra giraffe rhino hippo kangaroo koala panda
camel llama bison buffalo yak reindeer dinosaur creature beast critter chick cub snort bellow screech
squawk caw warble trill flutter wing flap flapping slither bite gnaw sniff sniffing lick panting
""",
    "nature": """
nature rain raining rainfall drizzle downpour storm thunder thunderstorm lightning wind windy gust
breeze blowing blizzard hail snow snowfall ice water waterfall stream river creek brook ocean sea
wave surf shore beach lake pond splash splashing drip dripping drop droplet bubble bubbling puddle
flood liquid pour pouring fire flame burning crackle crackling campfire bonfire ember earthquake
volcano lava rock rockfall avalanche landslide cave forest jungle tree leaf rustle rustling
branch twig grass bush wood woodland meadow swamp marsh mountain weather ambience
ambient outdoor cloud
tide current mud gravel sand dirt stone pebble wet steam geyser
""",
    "domestic/foley": """
door knock knocking slam creak creaking squeak hinge lock unlock key keys latch handle window shutter
curtain drawer cupboard cabinet shelf closet wardrobe chair table bed sofa furniture floor carpet
stair stairs footstep step walk walking run running jog jump landing fall falling stomp shuffle
kitchen cook cooking fry frying boil boiling kettle pot pan plate dish cup mug glass bottle jar can
cutlery fork knife spoon bowl tray sink tap faucet shower bath bathtub toilet flush washing wash
laundry dishwasher vacuum cleaner broom sweep sweeping brush scrub wipe mop bucket fridge freezer
microwave oven stove toaster blender mixer clock tick ticking alarm bell ring ringing doorbell phone
telephone mobile cellphone buzzer switch button click clicking typing keyboard typewriter mouse
computer printer paper newspaper envelope scissors cut cutting tear tearing rip
crumple crumpling fold zipper zip velcro fabric cloth clothes cloth leather bag backpack box cardboard
package wrap wrapping plastic metal wood wooden glass ceramic porcelain rubber chain coin money cash
register wallet keyring pen pencil write writing eraser tape stapler rope string thread sew sewing
candle lamp lighter match matches smoking cigarette hammer hammering nail screw screwdriver drill
drilling saw sawing chisel file sanding wrench spanner tool tools toolbox shovel dig digging pickaxe
axe chop chopping hoe rake ladder crate barrel basket pillow blanket towel soap hairdryer comb razor
shave toy ball bounce bouncing balloon pop popping squeeze rattle whistle party firework
grab pickup pick drop throw throwing catch hit hitting impact bump bang thud thump crash crashing
smash smashing shatter shattering break breaking crack cracking snap scrape scraping scratch
scratching rub rubbing slide sliding roll rolling drag dragging push pull lift put open opening
close closing shut shake shaking swing swinging spin tap tapping pat slap punch kick stab slash
squelch squish splat crunch crunching munch chew chewing eat eating drink drinking sip slurp gulp
swallow pour fill empty stir stirring spray spraying
""",
    "vehicles/machines": """
vehicle car truck lorry van bus taxi jeep tractor bulldozer excavator crane forklift motorcycle
motorbike scooter moped bicycle bike tram train railway locomotive subway metro carriage wagon cart
wheel tyre tire brake braking skid skidding horn honk siren ambulance police firetruck engine motor
idle idling rev revving ignition exhaust gear gearbox clutch accelerate acceleration racing
race kart boat ship ferry yacht canoe kayak rowing oar paddle sail submarine airplane aeroplane
plane aircraft jet airliner propeller helicopter rotor drone rocket spaceship spacecraft hovercraft
machine machinery factory industrial mechanical mechanism gear gears cog piston pump compressor
generator turbine fan ventilation air conditioner conditioning heater radiator boiler furnace
elevator lift escalator conveyor belt crane winch pulley lever valve pipe hydraulic pneumatic steam
hiss hum humming buzz whir whirring whine whirr rumble rumbling drone clank clanking clatter rattle
grind grinding beep beeping electric electrical electricity spark sparking static radio television
tv speaker microphone robot servo saw chainsaw lawnmower mower drill jackhammer construction
sawmill mill windmill watermill pulley printer copier fax
""",
    "weapons/explosions": """
gun gunshot gunfire shot shoot shooting fire firing rifle pistol handgun revolver shotgun machinegun
cannon artillery mortar bullet shell casing cartridge reload reloading cock magazine clip trigger
ricochet explosion explode exploding blast bomb grenade mine missile dynamite detonation boom burst
sword blade knife dagger axe spear lance arrow bow crossbow catapult shield armor armour clash clang
parry whoosh swoosh swish whip club mace hammer melee
""",
    "human non-speech": """
human people person man woman child kid baby infant boy girl crowd audience applause clap clapping
cheer cheering laugh laughing laughter giggle chuckle cry crying sob sobbing scream screaming shout
shouting yell yelling whistle whistling hum sing singing choir cough coughing sneeze sneezing sniff
sniffle breath breathing breathe inhale exhale sigh sighing gasp pant panting yawn yawning snore
snoring hiccup burp burping belch groan moan grunt grunting hurt ouch death die dying gargle
gargling spit kiss kissing heartbeat heart pulse stomach belly chest cheek finger snap hand palm
foot feet heel body shoulder head knuckle fist clapping tongue lip mouth teeth whisper murmur babble
vomit
""",
    "instruments": """
piano grand violin viola cello contrabass double bass guitar acoustic electric banjo mandolin
ukulele harp lute sitar koto shamisen zither dulcimer fiddle flute piccolo recorder clarinet oboe
bassoon saxophone sax trumpet trombone tuba horn french cornet bugle euphonium harmonica accordion
bagpipe ocarina organ harpsichord celesta glockenspiel xylophone marimba vibraphone tubular bell
chime chimes gong tambourine triangle drum drums snare kick tom cymbal hihat hat crash ride timpani
conga bongo djembe tabla cajon cowbell woodblock clave claves maraca maracas shaker castanet
castanets guiro kalimba steelpan percussion string strings brass woodwind reed pluck plucked bowed
strum strumming pizzicato tremolo orchestra orchestral ensemble chord
""",
}

REAL_WORLD_DOMAINS: Dict[str, FrozenSet[str]] = {d: frozenset(w.split()) for d, w in _WORDS.items()}
REAL_WORLD: FrozenSet[str] = frozenset().union(*REAL_WORLD_DOMAINS.values())
SPEECH, NOTES, OTHER = "speech", "rendered notes", "other (music, synthetic, game)"
DOMAINS = [SPEECH, NOTES, *REAL_WORLD_DOMAINS, OTHER]


def domain(tags: Iterable[str]) -> str:
    """The domain of a clip: speech, rendered notes, the real-world domain most of its tags name
    (ties: the first in DOMAINS order), or other."""
    tags = set(tags)
    if SPEECH in tags:
        return SPEECH
    if {"note", "instrument"} <= tags:
        return NOTES
    best, hits = OTHER, 0
    for d, words in REAL_WORLD_DOMAINS.items():
        n = len(tags & words)
        if n > hits:
            best, hits = d, n
    return best


def is_real_world(tags: Iterable[str]) -> bool:
    """Whether a (non-speech) clip's tags name a real-world sound source or action."""
    tags = set(tags)
    return SPEECH not in tags and bool(tags & REAL_WORLD)


# The words espeak-ng speaks for the synthetic speech source: the real-world words, one per
# sound source or action, so that a spoken word and the sound share a tag only where the
# sources already do (GCompris says 'dog' too).
SPOKEN_WORDS = sorted(REAL_WORLD)
